"""observability: where a job came from, its trace context

Revision ID: 0009_observability
Revises: 0008_flow_control
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

revision: str = '0009_observability'
down_revision: str | None = '0008_flow_control'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
