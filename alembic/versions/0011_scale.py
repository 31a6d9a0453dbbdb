"""scale: what many workers on one database, and days of traffic, need

Revision ID: 0011_scale
Revises: 0010_dashboard
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

revision: str = '0011_scale'
down_revision: str | None = '0010_dashboard'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
