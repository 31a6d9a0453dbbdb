"""dashboard: the record of operator actions, payload search

Revision ID: 0010_dashboard
Revises: 0009_observability
Create Date: 2026-11-30 09:00:00

The payload index is built CONCURRENTLY, outside the migration's
transaction, so enqueues, claims and completions go on while it is built
over a table of millions of rows. The extended statistics let the
dashboard estimate jobs per state and queue (and per state and name) from
what ANALYZE gathers, instead of counting a million rows per page view:
they cost ANALYZE a little and writes nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0010_dashboard'
down_revision: str | None = '0009_observability'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED = "state IN ('succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    op.create_table('operator_actions',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('via', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('job_id', postgresql.UUID(as_uuid=True), nullable=True),
    sa.Column('subject', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('detail', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.CheckConstraint("via IN ('dashboard', 'cli')", name=op.f('ck_operator_actions_via')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_actions'))
    )
    op.create_index('ix_operator_actions_job_id', 'operator_actions', ['job_id'], unique=False, postgresql_where=sa.text('job_id IS NOT NULL'))
    op.execute("CREATE STATISTICS IF NOT EXISTS st_jobs_state_queue (mcv) ON state, queue FROM jobs")
    op.execute("CREATE STATISTICS IF NOT EXISTS st_jobs_state_name (mcv) ON state, name FROM jobs")
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_jobs_payload_finished ON jobs"
            f" USING gin (payload jsonb_path_ops) WHERE {FINISHED}"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_payload_finished")
    op.execute("DROP STATISTICS IF EXISTS st_jobs_state_name")
    op.execute("DROP STATISTICS IF EXISTS st_jobs_state_queue")
    op.drop_index('ix_operator_actions_job_id', table_name='operator_actions', postgresql_where=sa.text('job_id IS NOT NULL'))
    op.drop_table('operator_actions')
