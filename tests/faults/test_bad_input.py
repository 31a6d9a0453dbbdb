"""Scenario 7: malformed messages get a clear error or a `failed` state, nothing else moves."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs import InvalidPayload, JobRequest, UnknownJob, enqueue, enqueue_many
from app.web import create_app
from tests.faults.conftest import ROOT, FaultDatabase, Row
from tests.faults.harness import books, settled
from tests.processes import start, stop, wait_for
from tests.web import sign_up, submit

pytestmark = pytest.mark.faults

WORK = {"n": 0, "seconds": 0, "ledger": "/dev/null"}
DEEP_150: Any = []
for _ in range(150):
    DEEP_150 = [DEEP_150]
#: Valid jsonb that Python cannot decode: nested 1,000 deep, a 5,001-digit number.
DEEP_1000 = '{"n": 0, "seconds": 0, "ledger": ' + "[" * 1000 + "]" * 1000 + "}"
HUGE_NUMBER = '{"n": 1e5000, "seconds": 0, "ledger": "x"}'
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
        "max_attempts must be between 1",
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
        "job 1 of the batch",
    ),
    # What the database would refuse, aborting the caller's transaction with it.
    (
        "NUL in a string",
        lambda s: enqueue(s, "faults.work", {**WORK, "ledger": "a\x00b"}),
        InvalidPayload,
        "contains a NUL",
    ),
    (
        "a lone surrogate",
        lambda s: enqueue(s, "faults.work", {**WORK, "ledger": "\udc80"}),
        InvalidPayload,
        "lone surrogate",
    ),
    (
        "payload 150 deep",
        lambda s: enqueue(s, "faults.pickup", {"t": DEEP_150}),
        InvalidPayload,
        "nested deeper than 100",
    ),
    (
        "payload over 1 MB",
        lambda s: enqueue(s, "faults.work", {**WORK, "ledger": "x" * (1 << 20)}),
        InvalidPayload,
        "JOB_PAYLOAD_MAX_BYTES",
    ),
    (
        "priority past int4",
        lambda s: enqueue(s, "faults.work", WORK, priority=2**31),
        ValueError,
        "priority must be between",
    ),
    (
        "max_attempts True",
        lambda s: enqueue(s, "faults.work", WORK, max_attempts=True),
        ValueError,
        "max_attempts must be a whole number",
    ),
    (
        "delay NaN",
        lambda s: enqueue(s, "faults.work", WORK, delay=math.nan),
        ValueError,
        "delay must be a number",
    ),
    (
        "run_at a string",
        lambda s: enqueue(s, "faults.work", WORK, run_at=cast(Any, "2030-01-01")),
        ValueError,
        "run_at must be a datetime",
    ),
    (
        "a 1 MB unique_key",
        lambda s: enqueue(s, "faults.work", WORK, unique_key="x" * (1 << 20)),
        ValueError,
        "unique_key must be at most",
    ),
    (
        "queue a,b",
        lambda s: enqueue(s, "faults.work", WORK, queue="a,b"),
        ValueError,
        "queue must be 1-64",
    ),
]

#: Rows written straight into the table, past every check: each must end failed, saying why.
BAD_ROWS = [
    ("unknown name", "gone.away", {}, "no handler is registered for job 'gone.away'"),
    ("wrong type", "faults.work", {**WORK, "n": "x"}, "'n' must be int"),
    ("missing argument", "faults.work", {"n": 1}, "missing a required argument"),
    ("extra argument", "faults.work", {**WORK, "zzz": 1}, "unexpected keyword argument"),
    ("null for float", "faults.work", {**WORK, "seconds": None}, "must be float"),
    ("nested 1,000 deep", "faults.work", DEEP_1000, "nested too deeply"),
    ("a 5,001-digit number", "faults.work", HUGE_NUMBER, "cannot be decoded"),
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
    for n, (_, attempt, error, words) in enumerate(BAD_ENQUEUES):
        with Session(fault_db.engine) as session:
            session.execute(  # the caller's own write, which must survive the refusal
                text("INSERT INTO queue_pauses (queue, paused_by) VALUES (:q, 'marker')"),
                {"q": f"marker-{n}"},
            )
            with pytest.raises(error, match=words):
                attempt(session)
            session.commit()  # whatever the failed enqueue left would be written now
    with fault_db.engine.begin() as conn:
        markers = conn.execute(
            text("DELETE FROM queue_pauses WHERE paused_by = 'marker' RETURNING queue")
        ).all()
    assert len(markers) == len(BAD_ENQUEUES)  # no caller lost its own write
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
                    {
                        "name": name,
                        "payload": payload if isinstance(payload, str) else json.dumps(payload),
                        "what": what,
                    },
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
            "7a bad input (API, rows)",
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


#: Malformed `flask jobs enqueue` calls: each must exit non-zero and say why.
GOOD = '{"n": 0, "seconds": 0, "ledger": "x"}'
BAD_COMMANDS = [
    (["no.such.job"], "no handler is registered"),
    (["faults.work", "--payload", '{"n": ' + "[" * 1000 + "]" * 1000 + "}"], "nested too deeply"),
    (["faults.work", "--payload", '{"n": 1' + "0" * 5000 + "}"], "not JSON"),
    (["faults.work", "--payload", '{"n": 0, "seconds": 0, "ledger": "a\\u0000"}'], "NUL"),
    (["faults.work", "--payload", GOOD, "--priority", "99999999999"], "priority must be between"),
    (["faults.work", "--payload", GOOD, "--queue", "a,b"], "queue must be 1-64"),
    (["faults.work", "--payload", "{n: 1}"], "not JSON"),
    (["faults.work", "--payload", "[1, 2]"], "must be a JSON object"),
    (["faults.work", "--payload", '"text"'], "must be a JSON object"),
    (["faults.work", "--payload", '{"n": 1}'], "missing a required argument"),
    (["faults.work", "--payload", '{"n": "1", "seconds": 0, "ledger": "x"}'], "'n' must be int"),
    (["faults.work", "--payload", '{"n": 1, "seconds": NaN, "ledger": "x"}'], "is not JSON"),
    (["faults.work", "--run-at", "next tuesday"], "Invalid value for '--run-at'"),
    (["faults.work", "--priority", "urgent"], "Invalid value for '--priority'"),
]

PW = "long enough password"

#: Malformed submissions of the site's forms: each must get a 4xx and write nothing.
BAD_FORMS: list[tuple[str, str, dict[str, Any]]] = [
    ("sign-up without email", "/signup", {"password": "long enough password"}),
    ("sign-up with a bad email", "/signup", {"email": "not-an-email", "password": "x" * 12}),
    ("sign-up with a short password", "/signup", {"email": "a@example.com", "password": "x"}),
    ("upload with no file", "/exports", {}),
    ("upload of an empty file", "/exports", {"file": (io.BytesIO(b""), "empty.csv")}),
    (
        "upload of a binary file",
        "/exports",
        {"file": (io.BytesIO(b"\x00\x01\x02\xff" * 100), "data.csv")},
    ),
    (
        "upload of a file over the size limit",
        "/exports",
        # Over UPLOAD_MAX_BYTES (set low below), under the test client's 500 KB
        # spool limit, so the client keeps the body in memory.
        {"file": (io.BytesIO(b"a,b\n" + b"1,2\n" * 50_000), "huge.csv")},
    ),
    (
        "upload of a CSV with ragged rows",
        "/exports",
        {"file": (io.BytesIO(b"a,b\n1,2\n3\n4,5,6\n"), "ragged.csv")},
    ),
    (
        'upload whose first line is `, "` repeated (csv.Sniffer backtracked on it)',
        "/exports",
        {"file": (io.BytesIO(b', "' * 30_000 + b"\n1\n"), "sniff.csv")},
    ),
    (
        "upload with 10,000 columns",
        "/exports",
        {"file": (io.BytesIO(b",".join(b"c%d" % n for n in range(10_000)) + b"\n1\n"), "w.csv")},
    ),
    (
        "upload with a 20 kB cell",
        "/exports",
        {"file": (io.BytesIO(b"a,b\n" + b"x" * 20_000 + b",1\n"), "cell.csv")},
    ),
    (
        "upload with a NUL past the head",
        "/exports",
        {"file": (io.BytesIO(b"a,b\n" + b"1,2\n" * 20_000 + b"\x00\n"), "nul.csv")},
    ),
    (
        "upload that stops being UTF-8 past the head",
        "/exports",
        {"file": (io.BytesIO(b"a,b\n" + b"1,2\n" * 20_000 + b"caf\xe9\n"), "latin.csv")},
    ),
    # Accounts: control characters, huge and multi-recipient addresses. A refused
    # sign-in still counts as a failed one (a login_attempts row), by design.
    ("sign-up with NUL in the email", "/signup", {"email": "a\x00@example.com", "password": PW}),
    (
        "sign-up with CR/LF in the email",
        "/signup",
        {"email": "a@x.com\r\nBcc: e@x.com", "password": PW},
    ),
    ("sign-up with two recipients", "/signup", {"email": "a@example.com,e@x.com", "password": PW}),
    ("sign-up with a quoted comma", "/signup", {"email": '"a,e"@example.com', "password": PW}),
    (
        "sign-up with a 3 kB email",
        "/signup",
        {"email": "a" * 3000 + "@example.com", "password": PW},
    ),
    ("sign-in with NUL in the email", "/login", {"email": "a\x00@example.com", "password": PW}),
    ("sign-in with ESC in the email", "/login", {"email": "a@example.com\x1b", "password": PW}),
    ("sign-in with a 3 kB email", "/login", {"email": "a" * 3000 + "@example.com", "password": PW}),
    ("forgot with NUL in the email", "/forgot", {"email": "a\x00@example.com"}),
    ("forgot with two recipients", "/forgot", {"email": "ops@example.com,e@x.com"}),
    ("forgot with a 3 kB email", "/forgot", {"email": "a" * 3000 + "@example.com"}),
]


def test_malformed_commands_and_forms_are_refused_and_write_nothing(
    fault_db: FaultDatabase, fault_env: dict[str, str], report: list[Row]
) -> None:
    for args, words in BAD_COMMANDS:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "flask"),
                "--app",
                "app.web:create_app",
                "jobs",
                "enqueue",
                *args,
            ],
            cwd=ROOT,
            env=fault_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and words in done.stderr + done.stdout, (args, done.stderr)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = fault_db.url
    os.environ["UPLOAD_MAX_BYTES"] = "100000"
    try:
        app = create_app({"TESTING": True})
        anonymous, member = app.test_client(), app.test_client()
        sign_up(member, "ops@example.com")
        for what, path, data in BAD_FORMS:
            client = member if path == "/exports" else anonymous
            response = submit(client, path, data)
            assert 400 <= response.status_code < 500, (what, response.status_code)
        app.extensions["pillars_engine"].dispose()
    finally:
        del os.environ["UPLOAD_MAX_BYTES"]
        if previous is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = previous
    with fault_db.engine.connect() as conn:
        jobs = conn.execute(text("SELECT name FROM jobs ORDER BY created_at")).scalars().all()
        exports = conn.execute(text("SELECT count(*) FROM exports")).scalar_one()
        users = conn.execute(text("SELECT email FROM users")).scalars().all()
    assert jobs == ["accounts.send_welcome"] and exports == 0  # only the one good sign-up
    assert users == ["ops@example.com"]
    report.append(
        Row(
            "7b bad input (CLI, forms)",
            "real flask CLI + site forms",
            f"{len(BAD_COMMANDS)} bad commands, {len(BAD_FORMS)} bad forms",
            1,
            0,
            0,
            0,
            "0",
            "all refused with a 4xx or exit 1",
        )
    )
