"""scale: what many workers on one database, and days of traffic, need

Revision ID: 0011_scale
Revises: 0010_dashboard
Create Date: 2026-11-30 10:00:00

`workers.lease`: a process behind a transaction pooler holds no life lock
and is judged by its heartbeat against the lease it registers with. A
nullable column without a default: a catalog change only, under a lock held
for milliseconds (alembic/env.py bounds the wait for it).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0011_scale'
down_revision: str | None = '0010_dashboard'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workers', sa.Column('lease', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('workers', 'lease')
