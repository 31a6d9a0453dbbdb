"""cron: the definition each schedule's state was written for

Revision ID: 0006_cron_definitions
Revises: 0005_queue_guards
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = '0006_cron_definitions'
down_revision: str | None = '0005_queue_guards'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
