"""Record what cron caught up or skipped after a gap: cron_events.

Revision ID: 0002_cron
Revises: 291ad41cadeb
Create Date: 2026-11-26 11:48:08.402199
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0002_cron'
down_revision: str | None = '291ad41cadeb'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cron_events',
    sa.Column('event_id', sa.Integer(), sa.Identity(always=True), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('first_occurrence', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_occurrence', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('caught_up', 'skipped')", name=op.f('ck_cron_events_kind')),
    sa.CheckConstraint('occurrences >= 1', name=op.f('ck_cron_events_occurrences_positive')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_cron_events'))
    )
    op.create_index('ix_cron_events_name_recorded_at', 'cron_events', ['name', 'recorded_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cron_events_name_recorded_at', table_name='cron_events')
    op.drop_table('cron_events')
