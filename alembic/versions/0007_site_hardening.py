"""site hardening: session generations and rate-limit events

Revision ID: 0007_site_hardening
Revises: 0006_cron_definitions
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = '0007_site_hardening'
down_revision: str | None = '0006_cron_definitions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
