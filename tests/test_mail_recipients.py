"""An email goes to exactly one address: nothing in a stored address can add a recipient."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import mail
from app.config import Settings
from app.jobs.testing import drain
from app.models import Job
from tests import factory


@pytest.mark.parametrize(
    "to",
    [
        "ada@example.com,eve@evil.example",
        "ada@example.com; eve@evil.example",
        "Eve <eve@evil.example>",
        '"ada,eve"@example.com',
        "ada@example.com\r\nBcc: eve@evil.example",
        "ada@example.com\n",
        "no-at-sign",
        "",
    ],
)
def test_composing_refuses_anything_but_one_plain_address(settings: Settings, to: str) -> None:
    with pytest.raises(mail.BadRecipient, match="not one plain email address"):
        mail.compose(settings, to, "Subject", "Body", "key")


def test_composing_to_one_address_works(settings: Settings) -> None:
    message = mail.compose(settings, "ada@example.com", "Subject", "Body", "key")
    assert message["To"] == "ada@example.com"


def test_an_account_email_to_a_stored_address_with_a_comma_fails_and_sends_nothing(
    db: Engine, mailbox: Path
) -> None:
    """An address stored before the sign-up form checked them is never mailed as two."""
    with db.begin() as conn:
        user_id = conn.execute(
            text(
                "INSERT INTO users (email, password_hash)"
                " VALUES ('ada@example.com,eve@evil.example', 'x') RETURNING id"
            )
        ).scalar_one()
    job_id = factory.job(db, "accounts.send_welcome", {"user_id": user_id})
    drain(db)
    with Session(db) as session:
        job = session.get_one(Job, job_id)
    assert job.last_error is not None and "not one plain email address" in job.last_error
    assert list(mailbox.glob("*.eml")) == []
