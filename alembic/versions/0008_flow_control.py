"""flow control: concurrency and ordering keys, queue limits

Revision ID: 0008_flow_control
Revises: 0007_site_hardening
Create Date: 2026-11-30 09:00:00

Safe beside the previous release: the new columns are nullable or have a
constant default (no table rewrite), the state check is replaced NOT VALID
and validated without blocking writes, and the indexes are built
concurrently, outside the migration's transaction.

The autocommit block commits the first part before the indexes are built.
A release step stopped after that point can run again: the first part is
then skipped (its table is there), and an index an interrupted build left
invalid is dropped and built afresh.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0008_flow_control'
down_revision: str | None = '0007_site_hardening'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "'waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled'"
FLOW = (
    "(flow_key IS NULL) = (flow_kind IS NULL) AND (flow_key IS NULL) = (flow_limit IS NULL)"
    " AND flow_limit >= 1 AND flow_kind IN ('concurrency', 'ordering', 'ordering_block')"
)
ACTIVE = (
    "flow_key IS NOT NULL AND (state IN ('queued', 'running')"
    " OR (state = 'failed' AND flow_kind = 'ordering_block'))"
)


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table('queue_limits'):
        _catalog()
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE jobs VALIDATE CONSTRAINT ck_jobs_state")
        op.execute("ALTER TABLE jobs VALIDATE CONSTRAINT ck_jobs_flow")
        for name in ('ix_jobs_waiting', 'ix_jobs_fresh', 'ix_jobs_flow_active'):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.create_index('ix_jobs_waiting', 'jobs', ['flow_key', sa.literal_column('priority DESC'), 'job_id'], unique=False, postgresql_where=sa.text("state = 'waiting'"), postgresql_concurrently=True)
        op.create_index('ix_jobs_fresh', 'jobs', ['job_id'], unique=False, postgresql_where=sa.text("state = 'waiting' AND flow_fresh"), postgresql_concurrently=True)
        op.create_index('ix_jobs_flow_active', 'jobs', ['flow_key'], unique=False, postgresql_where=sa.text(ACTIVE), postgresql_concurrently=True)


def _catalog() -> None:
    """The catalog changes, in the migration's transaction: locks held for milliseconds."""
    op.create_table('queue_limits',
    sa.Column('queue', sa.Text(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=True),
    sa.Column('rate', sa.Float(), nullable=True),
    sa.Column('burst', sa.Integer(), nullable=True),
    sa.Column('tokens', sa.Float(), server_default=sa.text('0'), nullable=False),
    sa.Column('refilled_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('set_by', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.CheckConstraint('concurrency >= 1', name=op.f('ck_queue_limits_concurrency_positive')),
    sa.CheckConstraint('rate > 0 AND burst >= 1', name=op.f('ck_queue_limits_rate_positive')),
    sa.CheckConstraint('(rate IS NULL) = (burst IS NULL)', name=op.f('ck_queue_limits_rate_with_burst')),
    sa.PrimaryKeyConstraint('queue', name=op.f('pk_queue_limits'))
    )
    op.add_column('jobs', sa.Column('flow_key', sa.Text(), nullable=True))
    op.add_column('jobs', sa.Column('flow_limit', sa.Integer(), nullable=True))
    op.add_column('jobs', sa.Column('flow_kind', sa.Text(), nullable=True))
    op.add_column('jobs', sa.Column('flow_fresh', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_state")
    op.execute(f"ALTER TABLE jobs ADD CONSTRAINT ck_jobs_state CHECK (state IN ({STATES})) NOT VALID")
    op.execute(f"ALTER TABLE jobs ADD CONSTRAINT ck_jobs_flow CHECK ({FLOW}) NOT VALID")


def downgrade() -> None:
    op.drop_index('ix_jobs_flow_active', table_name='jobs')
    op.drop_index('ix_jobs_fresh', table_name='jobs')
    op.drop_index('ix_jobs_waiting', table_name='jobs')
    # Waiting jobs become plain queued ones: their keys are gone with the columns.
    op.execute("UPDATE jobs SET state = 'queued' WHERE state = 'waiting'")
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_flow")
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_state")
    op.execute(
        "ALTER TABLE jobs ADD CONSTRAINT ck_jobs_state"
        " CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'))"
    )
    op.drop_column('jobs', 'flow_fresh')
    op.drop_column('jobs', 'flow_kind')
    op.drop_column('jobs', 'flow_limit')
    op.drop_column('jobs', 'flow_key')
    op.drop_table('queue_limits')
