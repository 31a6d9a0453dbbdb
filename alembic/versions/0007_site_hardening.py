"""site hardening: session generations and rate-limit events

Revision ID: 0007_site_hardening
Revises: 0006_cron_definitions
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0007_site_hardening'
down_revision: str | None = '0006_cron_definitions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'users',
        sa.Column('session_generation', sa.Integer(), server_default=sa.text('0'), nullable=False),
    )
    op.create_table('rate_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_events'))
    )
    op.create_index('ix_rate_events_expires_at', 'rate_events', ['expires_at'], unique=False)
    op.create_index('ix_rate_events_key_expires_at', 'rate_events', ['key', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rate_events_key_expires_at', table_name='rate_events')
    op.drop_index('ix_rate_events_expires_at', table_name='rate_events')
    op.drop_table('rate_events')
    op.drop_column('users', 'session_generation')
