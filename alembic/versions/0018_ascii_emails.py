"""ascii emails: stored addresses in the form every mail server takes

Revision ID: 0018_ascii_emails
Revises: 0017_readable_times
Create Date: 2026-12-02 17:10:00

Addresses used to be stored as typed: x@bücher.de needed SMTPUTF8 to be
sent to, and a@ｅｘａｍｐｌｅ.com stood beside a@example.com as a second
account for one mailbox. New ones are stored in their ASCII form
(`accounts.normalize_email`); this brings the old ones to it, each where
no other account already holds that form (such a pair is left as it is,
for an operator to merge). Only rows with a character outside ASCII are
read: on a site without any, nothing is written.
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018_ascii_emails"
down_revision: str | None = "0017_readable_times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ascii(email: str) -> str:
    """The address as `accounts.normalize_email` stores it today (written out here, so
    this migration means the same whatever that function later becomes)."""
    from email_validator import EmailNotValidError, validate_email

    text = unicodedata.normalize("NFC", email).strip()
    try:
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return email
    return str(valid.ascii_email or valid.normalized).lower()


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, email FROM users WHERE email ~ '[^\\x01-\\x7e]'"))
    for user_id, email in rows.all():
        ascii_form = _ascii(email)
        if ascii_form == email:
            continue
        conn.execute(
            sa.text(
                "UPDATE users SET email = :ascii WHERE id = :id"
                " AND NOT EXISTS (SELECT 1 FROM users WHERE email = :ascii)"
            ),
            {"ascii": ascii_form, "id": user_id},
        )


def downgrade() -> None:
    """The typed form is not kept: the ASCII one stays (it is the same address)."""
