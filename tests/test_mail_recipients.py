"""An email goes to exactly one address: nothing in a stored address can add a recipient."""

from __future__ import annotations

from email import message_from_bytes
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


@pytest.mark.parametrize(
    "to",
    [
        "=?utf-8?q?ada?=@example.com",
        "=?utf-8?q?eve=40evil.example=2c_x?=@example.com",
        "=?utf-8?q?a=0d=0abcc=3a_eve=40evil.example?=@example.com",
    ],
)
def test_an_encoded_word_is_no_address(settings: Settings, to: str) -> None:
    """Decoded on the way out, it named another mailbox than the one checked, or two."""
    with pytest.raises(mail.BadRecipient, match="encoded word"):
        mail.compose(settings, to, "Subject", "Body", "key")


def test_an_address_stored_with_an_international_domain_is_sent_to_in_ascii(
    settings: Settings,
) -> None:
    message = mail.compose(settings, "ada@bücher.de", "Subject", "Body", "key")
    assert message["To"] == "ada@xn--bcher-kva.de"


def test_a_subject_made_of_encoded_words_stays_one_header(settings: Settings) -> None:
    """An export named so put Bcc and Reply-To headers, and a body, into its mail."""
    name = "=?utf-8?q?r=0D=0ABcc=3A_eve=40evil.example=0D=0A=0D=0Afake_body?=.csv"
    message = mail.compose(settings, "ada@example.com", f"Your report {name} is ready", "B", "k")
    written = message_from_bytes(message.as_bytes())
    assert written["Bcc"] is None and str(written.get_payload()).strip() == "B"
    subject = "".join(str(written["Subject"]).split("\n"))  # unfolded
    assert subject.startswith("Your report = ?utf-8?q?r=0D=0ABcc")


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
