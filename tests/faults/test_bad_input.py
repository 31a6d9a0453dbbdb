"""Scenario 7: malformed messages get a clear error or a `failed` state, nothing else moves."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs import InvalidPayload, JobRequest, UnknownJob, enqueue, enqueue_many
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import books, settled
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults

WORK = {"n": 0, "seconds": 0, "ledger": "/dev/null"}
circular: dict[str, Any] = {}
circular["self"] = circular

#: (what is wrong, how it is enqueued, the error it must raise, words it must say)
BAD_ENQUEUES: list[tuple[str, Callable[[Session], object], type[Exception], str]] = [
    ("unknown name", lambda s: enqueue(s, "no.such.job", {}), UnknownJob, "no handler"),
    ("empty name", lambda s: enqueue(s, "", {}), UnknownJob, "no handler"),
    (
        "payload is a list",
        lambda s: enqueue(s, "faults.work", cast(Any, [1])),
        InvalidPayload,
        "JSON object",
    ),
    (
        "payload is a string",
        lambda s: enqueue(s, "faults.work", cast(Any, "n=1")),
        InvalidPayload,
        "JSON object",
    ),
    (
        "missing argument",
        lambda s: enqueue(s, "faults.work", {"n": 1}),
        InvalidPayload,
        "missing a required argument",
    ),
    (
        "unexpected argument",
        lambda s: enqueue(s, "faults.work", {**WORK, "x": 1}),
        InvalidPayload,
        "unexpected keyword",
    ),
    (
        "str for int",
        lambda s: enqueue(s, "faults.work", {**WORK, "n": "1"}),
        InvalidPayload,
        "'n' must be int",
    ),
    (
        "bool for int",
        lambda s: enqueue(s, "faults.work", {**WORK, "n": True}),
        InvalidPayload,
        "'n' must be int",
    ),
    (
        "list for float",
        lambda s: enqueue(s, "faults.work", {**WORK, "seconds": [1]}),
        InvalidPayload,
        "'seconds' must be float",
    ),
    (
        "NaN",
        lambda s: enqueue(s, "faults.work", {**WORK, "seconds": math.nan}),
        InvalidPayload,
        "not JSON",
    ),
    (
        "Infinity",
        lambda s: enqueue(s, "faults.work", {**WORK, "seconds": math.inf}),
        InvalidPayload,
        "not JSON",
    ),
    (
        "a set",
        lambda s: enqueue(s, "faults.work", {**WORK, "ledger": {"a"}}),
        InvalidPayload,
        "not JSON",
    ),
    (
        "bytes",
        lambda s: enqueue(s, "faults.work", {**WORK, "ledger": b"x"}),
        InvalidPayload,
        "not JSON",
    ),
    (
        "circular payload",
        lambda s: enqueue(s, "faults.pickup", {"t": circular}),
        InvalidPayload,
        "not JSON",
    ),
    (
        "non-string key",
        lambda s: enqueue(s, "faults.work", cast(Any, {1: 2})),
        InvalidPayload,
        "does not fit",
    ),
    (
        "naive run_at",
        lambda s: enqueue(s, "faults.work", WORK, run_at=datetime(2030, 1, 1)),
        ValueError,
        "timezone-aware",
    ),
    (
        "run_at and delay",
        lambda s: enqueue(
            s, "faults.work", WORK, delay=1, run_at=datetime(2030, 1, 1).astimezone()
        ),
        ValueError,
        "not both",
    ),
    (
        "negative delay",
        lambda s: enqueue(s, "faults.work", WORK, delay=-5),
        ValueError,
        "must not be negative",
    ),
    (
        "max_attempts 0",
        lambda s: enqueue(s, "faults.work", WORK, max_attempts=0),
        ValueError,
        "at least 1",
    ),
    (
        "priority not a number",
        lambda s: enqueue(s, "faults.work", WORK, priority="high"),  # type: ignore[arg-type]
        ValueError,
        "priority must be a whole number",
    ),
    (
        "one bad job in a bulk enqueue",
        lambda s: enqueue_many(s, [JobRequest("faults.work", WORK), JobRequest("faults.work", {})]),
        InvalidPayload,
        "missing a required argument",
    ),
]

#: Rows written straight into the table, past every check: each must end failed, saying why.
BAD_ROWS = [
    ("unknown name", "gone.away", {}, "no handler is registered for job 'gone.away'"),
    ("wrong type", "faults.work", {**WORK, "n": "x"}, "'n' must be int"),
    ("missing argument", "faults.work", {"n": 1}, "missing a required argument"),
    ("extra argument", "faults.work", {**WORK, "zzz": 1}, "unexpected keyword argument"),
    ("null for float", "faults.work", {**WORK, "seconds": None}, "must be float"),
    (
        "handler raises with secrets",
        "faults.secret",
        {"password": "pw-s3cret-value", "api_key": "key-s3cret-value"},
        "RuntimeError",
    ),
]


def test_malformed_messages_are_refused_or_fail_with_a_reason(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    for _, attempt, error, words in BAD_ENQUEUES:
        with Session(fault_db.engine) as session:
            with pytest.raises(error, match=words):
                attempt(session)
            session.commit()  # whatever the failed enqueue left would be written now
    with pytest.raises(IntegrityError, match="ck_jobs_payload_object"):
        with fault_db.engine.begin() as conn:
            conn.execute(text("INSERT INTO jobs (name, payload) VALUES ('faults.work', '[1]')"))
    ledger = tmp_path / "ledger"
    good = {**WORK, "ledger": str(ledger)}
    worker = start("worker.py", fault_env, log=tmp_path / "worker.log")
    try:
        with Session(fault_db.engine) as session:
            for n in range(50):
                enqueue(session, "faults.work", {**good, "n": n})
            session.commit()
        with fault_db.engine.begin() as conn:
            for what, name, payload, _ in BAD_ROWS:
                conn.execute(
                    text(
                        "INSERT INTO jobs (name, payload, max_attempts, context) "
                        "VALUES (:name, CAST(:payload AS jsonb), 1, :what)"
                    ),
                    {"name": name, "payload": json.dumps(payload), "what": what},
                )
        total = 50 + len(BAD_ROWS)
        wait_for(lambda: settled(fault_db.engine, total), timeout=60, what="every job")
        assert worker.poll() is None  # it never stopped
    finally:
        assert stop(worker) == 0
    with fault_db.engine.connect() as conn:
        errors: dict[str, str] = dict(
            conn.execute(
                text("SELECT context, last_error || errors::text FROM jobs WHERE state = 'failed'")
            ).all()
        )
    for what, _, _, words in BAD_ROWS:
        assert words in errors[what], what
    everything = "\n".join(errors.values()) + (tmp_path / "worker.log").read_text()
    assert "s3cret-value" not in everything
    result = books(fault_db.engine, 50 + len(BAD_ROWS), ledger)
    report.append(
        Row(
            "7 bad input",
            "50 jobs + bad rows",
            f"{len(BAD_ENQUEUES) + 1} refused enqueues, {len(BAD_ROWS)} bad rows",
            50 + len(BAD_ROWS),
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            "-",
        )
    )
    assert result.states["succeeded"] == 50 and result.states["failed"] == len(BAD_ROWS)
