"""Secrets in payloads never reach logs, stored errors or pages."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.jobs import InvalidPayload, enqueue
from app.jobs.redact import mask, redact
from app.jobs.testing import drain
from app.models import Job
from tests import factory


def test_mask_hides_values_of_secret_looking_keys_at_any_depth() -> None:
    payload = {
        "user": "ann",
        "password": "hunter2",
        "smtp": {"API_KEY": "k-123", "host": "h"},
        "tokens": ["a", "b"],
    }
    assert mask(payload) == {
        "user": "ann",
        "password": "***",
        "smtp": {"API_KEY": "***", "host": "h"},
        "tokens": "***",
    }


def test_redact_cuts_secret_values_out_of_text() -> None:
    text = "refused: password='hunter2' for ann (token abc123)"
    assert redact(text, {"password": "hunter2", "auth_token": "abc123", "user": "ann"}) == (
        "refused: password=*** for ann (token ***)"
    )


def test_handler_error_quoting_a_secret_is_stored_and_logged_without_it(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = factory.job(db, "test.fail", {"message": "bad"}, max_attempts=1)
    with Session(db) as session:  # a handler that quotes its secret argument
        job_id = enqueue(session, "test.login", {"user": "ann", "password": "hunter2-secret"})
        session.commit()
    with caplog.at_level(logging.INFO):
        drain(db)
    with Session(db) as session:
        row = session.get_one(Job, job_id)
    assert row.last_error is not None and "***" in row.last_error
    assert "hunter2-secret" not in row.last_error
    assert "hunter2-secret" not in str(row.errors)
    assert "hunter2-secret" not in caplog.text


@pytest.mark.parametrize("how", ["retry", "discard"])
def test_a_retry_or_discard_reason_quoting_a_secret_is_stored_and_logged_without_it(
    db: Engine, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    job_id = factory.job(db, "test.give_up", {"api_token": "tok-8c1f0a9e", "how": how})
    with caplog.at_level(logging.INFO):
        drain(db)
    with Session(db) as session:
        row = session.get_one(Job, job_id)
    assert row.last_error is not None and "refused token ***" in row.last_error
    assert "tok-8c1f0a9e" not in str(row.errors)
    assert "refused token" in caplog.text and "tok-8c1f0a9e" not in caplog.text


def test_invalid_payload_message_does_not_quote_a_secret(session: Session) -> None:
    with pytest.raises(InvalidPayload) as error:
        enqueue(session, "test.login", {"user": "ann", "password": 12345678})
    assert "12345678" not in str(error.value)


def test_circular_payload_does_not_break_redaction() -> None:
    loop: dict[str, object] = {"password": "hunter2"}
    loop["again"] = loop
    assert redact("x hunter2", loop) == "x ***"
    assert mask(loop)["password"] == "***"


@pytest.mark.parametrize(
    "key",
    [
        "pwd",
        "db_pwd",
        "access_key",
        "AWS_SECRET_ACCESS_KEY",
        "key",
        "signingKey",
        "jwt",
        "refresh_jwt",
        "bearer",
        "dsn",
        "sentry_dsn",
        "database_url",
        "DATABASE_URL",
        "connection_string",
        "connStr",
        "card_number",
        "cardNumber",
        "cvv",
        "cvc",
        "ssn",
        "iban",
        "user_pin",
        "otp",
        "hmac_key",
    ],
)
def test_mask_hides_every_kind_of_secret_key(key: str) -> None:
    assert mask({key: "s3cret-value", "user": "ann"}) == {key: "***", "user": "ann"}


@pytest.mark.parametrize("key", ["monkey", "message", "spinner", "user", "host", "filename"])
def test_mask_leaves_words_that_only_contain_a_secret_word_alone(key: str) -> None:
    assert mask({key: "shown"}) == {key: "shown"}


def test_mask_hides_the_password_inside_a_url_under_any_key() -> None:
    payload = {
        "target": "postgresql://app:s3cret@db:5432/app",
        "hooks": ["https://h.example/cb?api_key=k-123&page=2", "https://h.example:8443/x@y"],
    }
    assert mask(payload) == {
        "target": "postgresql://app:***@db:5432/app",
        "hooks": ["https://h.example/cb?api_key=***&page=2", "https://h.example:8443/x@y"],
    }


def test_redact_cuts_a_url_password_out_of_text_wherever_it_is_quoted() -> None:
    payload = {"target": "postgresql://app:s3cret@db/app"}
    text = "connection to postgresql://app:s3cret@db/app failed; password 's3cret' refused"
    assert redact(text, payload) == (
        "connection to postgresql://app:***@db/app failed; password *** refused"
    )


def test_redact_scrubs_urls_with_passwords_even_when_the_payload_has_none() -> None:
    text = "could not reach redis://:hunter2@cache:6379/0 nor https://h/?token=abc"
    assert redact(text, {}) == "could not reach redis://:***@cache:6379/0 nor https://h/?token=***"


@pytest.mark.parametrize(
    "hostile",
    ["://a:" + "b" * 500_000, "://:" * 200_000, "?a=" * 200_000, "://x:" + "@" * 500_000],
)
def test_scrubbing_stays_linear_on_hostile_text(hostile: str) -> None:
    assert len(redact(hostile, {})) <= len(hostile)  # finishes: no backtracking blow-up


def test_a_stored_error_quoting_a_database_url_is_kept_without_its_password(
    db: Engine,
) -> None:
    with Session(db) as session:
        job_id = enqueue(
            session, "test.fail", {"message": "cannot connect postgresql://app:pw-s3cret@db/app"}
        )
        session.commit()
    drain(db)
    with Session(db) as session:
        row = session.get_one(Job, job_id)
    assert row.last_error is not None and "pw-s3cret" not in row.last_error + str(row.errors)
    assert "postgresql://app:***@db/app" in row.last_error
