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
    with Session(db) as session:
        job_id = enqueue(session, "test.fail", {"message": "bad"}, max_attempts=1)
        session.commit()
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


def test_invalid_payload_message_does_not_quote_a_secret(session: Session) -> None:
    with pytest.raises(InvalidPayload) as error:
        enqueue(session, "test.login", {"user": "ann", "password": 12345678})
    assert "12345678" not in str(error.value)


def test_circular_payload_does_not_break_redaction() -> None:
    loop: dict[str, object] = {"password": "hunter2"}
    loop["again"] = loop
    assert redact("x hunter2", loop) == "x ***"
    assert mask(loop)["password"] == "***"
