"""flow control: concurrency and ordering keys, queue limits

Revision ID: 0008_flow_control
Revises: 0007_site_hardening
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

revision: str = '0008_flow_control'
down_revision: str | None = '0007_site_hardening'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
