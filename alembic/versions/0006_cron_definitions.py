"""cron: the definition each schedule's state was written for, removals and pauses

Revision ID: 0006_cron_definitions
Revises: 0005_queue_guards
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0006_cron_definitions'
down_revision: str | None = '0005_queue_guards'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep fingerprint NULL: the next step adopts the definition
    # it runs, rather than mistaking every schedule for a redefined one.
    op.add_column('cron_state', sa.Column('fingerprint', sa.Text(), nullable=True))
    op.add_column('cron_state', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cron_state', sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cron_state', sa.Column('paused_by', sa.Text(), nullable=True))
    op.drop_constraint(op.f('ck_cron_events_kind'), 'cron_events', type_='check')
    op.drop_constraint(op.f('ck_cron_events_occurrences_positive'), 'cron_events', type_='check')
    op.create_check_constraint(
        op.f('ck_cron_events_kind'), 'cron_events', "kind IN ('caught_up', 'skipped', 'redefined')"
    )
    op.create_check_constraint(
        op.f('ck_cron_events_occurrences_positive'),
        'cron_events',
        "occurrences >= 1 OR (kind = 'redefined' AND occurrences = 0)",
    )


def downgrade() -> None:
    # The old constraints cannot hold redefinitions: they go with the columns.
    op.execute("DELETE FROM cron_events WHERE kind = 'redefined'")
    op.drop_constraint(op.f('ck_cron_events_occurrences_positive'), 'cron_events', type_='check')
    op.drop_constraint(op.f('ck_cron_events_kind'), 'cron_events', type_='check')
    op.create_check_constraint(
        op.f('ck_cron_events_kind'), 'cron_events', "kind IN ('caught_up', 'skipped')"
    )
    op.create_check_constraint(
        op.f('ck_cron_events_occurrences_positive'), 'cron_events', 'occurrences >= 1'
    )
    op.drop_column('cron_state', 'paused_by')
    op.drop_column('cron_state', 'paused_at')
    op.drop_column('cron_state', 'removed_at')
    op.drop_column('cron_state', 'fingerprint')
