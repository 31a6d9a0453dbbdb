"""confirm address: a new account signs in only once its emailed link is followed

Revision ID: 0014_confirm_address
Revises: 0013_observability
Create Date: 2026-11-30 12:00:00

`users.confirmed_at` is null until the holder follows the confirmation link
(or resets the password, which proves the mailbox as well). Accounts made
before this revision signed in without one, so they count as confirmed from
their creation. The column is added nullable without a default (a catalog
change only); the UPDATE rewrites each existing user row once.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014_confirm_address"
down_revision: str | None = "0013_observability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET confirmed_at = created_at")


def downgrade() -> None:
    op.drop_column("users", "confirmed_at")
