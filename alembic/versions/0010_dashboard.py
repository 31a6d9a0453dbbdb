"""dashboard: the record of operator actions, payload search

Revision ID: 0010_dashboard
Revises: 0009_observability
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

revision: str = '0010_dashboard'
down_revision: str | None = '0009_observability'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
