"""One trace from the click to the email, across real processes: gunicorn, the worker
and an SMTP server, each exporting its spans as JSON lines to one file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text

from app import tracing
from tests import factory
from tests.processes import start, stop, wait_for, written_lines
from tests.test_logs import sign_up_over_http
from tests.test_mail import Inbox, free_port

pytestmark = pytest.mark.slow

ENQUEUER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a loopback port, in a thread."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return tmp_path / "spans.jsonl"


@pytest.fixture
def process_env(
    process_env: dict[str, str], spans_file: Path, smtp: tuple[Inbox, int]
) -> dict[str, str]:
    """Every process traces to `spans_file`; mail goes over SMTP to the test's server."""
    _, port = smtp
    return {
        **process_env,
        "PILLARS_TRACE_FILE": str(spans_file),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_STARTTLS": "false",
    }


def spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in written_lines(path)]


def test_a_sign_up_and_its_welcome_email_are_one_trace(
    db: Engine,
    site: str,
    process_env: dict[str, str],
    spans_file: Path,
    smtp: tuple[Inbox, int],
    tmp_path: Path,
) -> None:
    sign_up_over_http(site, "trace-1")
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        inbox, _ = smtp
        wait_for(lambda: inbox.envelopes, what="the welcome email to arrive")

        def smtp_span() -> list[dict[str, Any]]:
            return [span for span in spans(spans_file) if span["name"] == "smtp send"]

        (sent,) = wait_for(smtp_span, what="the SMTP span")
    finally:
        assert stop(worker) == 0
    trace = [span for span in spans(spans_file) if span["trace_id"] == sent["trace_id"]]
    (request,) = [s for s in trace if s["kind"] == "SERVER" and s["name"] == "POST /signup"]
    (send,) = [s for s in trace if s["kind"] == "PRODUCER"]
    (process,) = [s for s in trace if s["kind"] == "CONSUMER"]
    assert send["service"] == "pillars-web" and process["service"] == "pillars-worker"
    assert send["parent_id"] == request["span_id"] and request["parent_id"] is None
    assert process["parent_id"] == send["span_id"] and sent["parent_id"] == process["span_id"]
    assert process["attributes"]["messaging.system"] == "pillars"
    assert process["attributes"]["messaging.operation.type"] == "process"
    assert process["attributes"]["pillars.job.name"] == "accounts.send_welcome"
    assert process["attributes"]["pillars.job.outcome"] == "succeeded"
    under_request = [s for s in trace if s["parent_id"] == request["span_id"]]
    assert any(s["kind"] == "CLIENT" for s in under_request), "its SQL statements are traced"
    with db.connect() as conn:
        stored = conn.execute(
            text("SELECT trace_context FROM jobs WHERE name = 'accounts.send_welcome'")
        ).scalar_one()
    assert tracing.trace_id_of(stored) == sent["trace_id"]


def test_a_retry_starts_its_own_trace_linked_to_the_enqueuer(
    db: Engine, process_env: dict[str, str], spans_file: Path, tmp_path: Path
) -> None:
    job_id = factory.job(db, "test.fail", {"message": "try again"})
    with db.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET trace_context = CAST(:tc AS jsonb) WHERE job_id = :id"),
            {"tc": json.dumps({"traceparent": ENQUEUER}), "id": job_id},
        )
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:

        def attempts() -> list[dict[str, Any]]:
            found = [s for s in spans(spans_file) if s["kind"] == "CONSUMER"]
            return found if len(found) >= 2 else []

        first, second = sorted(wait_for(attempts, what="two attempts"), key=attempt)[:2]
    finally:
        assert stop(worker) == 0
    trace_id, span_id = ENQUEUER.split("-")[1:3]
    assert first["trace_id"] == trace_id and first["parent_id"] == span_id
    assert first["links"] == [] and first["status"] == "ERROR" and "exception" in first["events"]
    assert second["trace_id"] != trace_id and second["parent_id"] is None
    assert second["links"] == [{"trace_id": trace_id, "span_id": span_id}]
    assert second["attributes"]["messaging.message.id"] == str(job_id)


def attempt(span: dict[str, Any]) -> int:
    number: int = span["attributes"]["pillars.job.attempt"]
    return number


def test_a_late_first_attempt_starts_its_own_trace(
    db: Engine, process_env: dict[str, str], spans_file: Path, tmp_path: Path
) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET trace_context = CAST(:tc AS jsonb), "
                "created_at = now() - interval '2 minutes' WHERE job_id = :id"
            ),
            {"tc": json.dumps({"traceparent": ENQUEUER}), "id": job_id},
        )
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:

        def consumer() -> list[dict[str, Any]]:
            return [s for s in spans(spans_file) if s["kind"] == "CONSUMER"]

        (span,) = wait_for(consumer, what="the attempt's span")
    finally:
        assert stop(worker) == 0
    assert span["parent_id"] is None and span["links"][0]["span_id"] == ENQUEUER.split("-")[2]
    assert uuid.UUID(span["attributes"]["messaging.message.id"]) == job_id
