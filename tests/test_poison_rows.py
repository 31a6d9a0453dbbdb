"""One poison row or outcome fails alone: its neighbours run and no worker ever stops."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many
from app.jobs.testing import drain
from tests.processes import start, stop, wait_for

DEEP = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
HUGE_NUMBER = '{"a": 1e5000}'


def insert_raw(engine: Engine, name: str, payload: str, **columns: Any) -> uuid.UUID:
    """Write a row straight into the table, past every check enqueue makes."""
    names = ", ".join(["name", "payload", *columns])
    values = ", ".join([":name", "CAST(:payload AS jsonb)", *(f":{c}" for c in columns)])
    with engine.begin() as conn:
        job_id: uuid.UUID = conn.execute(
            text(f"INSERT INTO jobs ({names}) VALUES ({values}) RETURNING job_id"),
            {"name": name, "payload": payload, **columns},
        ).scalar_one()
    return job_id


def job(engine: Engine, job_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).one()


def test_any_reader_can_read_a_row_python_cannot_decode(db: Engine) -> None:
    deep, huge = insert_raw(db, "test.add", DEEP), insert_raw(db, "test.add", HUGE_NUMBER)
    assert "nested too deeply" in job(db, deep).payload["unreadable"]
    assert "4300 digits" in job(db, huge).payload["unreadable"]


@pytest.mark.slow
def test_rows_that_cannot_be_decoded_fail_alone_and_the_worker_keeps_running(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    deep = insert_raw(db, "test.add", DEEP)
    huge = insert_raw(db, "test.add", HUGE_NUMBER)
    with Session(db) as session:
        good = enqueue_many(session, [JobRequest("test.add", {"a": n}) for n in range(6)])
        session.commit()
    worker = start("worker.py", process_env, "--concurrency", "8", log=tmp_path / "w.log")
    try:
        wait_for(lambda: all(job(db, j).state == "succeeded" for j in good), what="the neighbours")
        wait_for(lambda: job(db, huge).state == "failed", what="the unreadable rows to fail")
        assert worker.poll() is None
    finally:
        assert stop(worker) == 0
    for bad, words in ((deep, "nested too deeply"), (huge, "cannot be decoded")):
        row = job(db, bad)
        assert (row.state, row.attempts) == ("failed", 1)
        assert words in row.last_error


@pytest.mark.parametrize("when", ["infinity", "-infinity", "10000-01-01", "0001-01-01 BC"])
def test_the_table_refuses_times_no_reader_can_convert(db: Engine, when: str) -> None:
    with pytest.raises(IntegrityError, match="run_at_readable"):
        insert_raw(db, "test.add", '{"a": 1}', run_at=when)
    with pytest.raises(IntegrityError, match="scheduled_for_readable"):
        insert_raw(db, "test.add", '{"a": 1}', scheduled_for=when)


@pytest.mark.parametrize(
    "column", ["created_at", "locked_at", "heartbeat_at", "started_at", "finished_at"]
)
@pytest.mark.parametrize("when", ["infinity", "-infinity", "0001-01-01 BC"])
def test_no_time_of_a_job_may_be_one_no_reader_can_convert(
    db: Engine, column: str, when: str
) -> None:
    """created_at = '-infinity' made every claim fail: the claim subtracts it."""
    with pytest.raises(IntegrityError, match=f"{column}_readable"):
        insert_raw(db, "test.add", '{"a": 1}', **{column: when})


def test_a_row_at_the_limit_of_its_attempts_counter_runs_and_stops_no_claim(db: Engine) -> None:
    """attempts = 2147483647 made every claim fail with 'integer out of range'."""
    top = 2**31 - 1
    poison = insert_raw(db, "test.add", '{"a": 1}', attempts=top, max_attempts=top)
    with Session(db) as session:
        good = [enqueue(session, "test.add", {"a": n}, priority=-1) for n in range(3)]
        session.commit()
    drained = drain(db)
    assert drained.succeeded == [poison, *good]
    assert job(db, poison).attempts == top


def test_a_negative_attempts_counter_is_refused(db: Engine) -> None:
    with pytest.raises(IntegrityError, match="attempts_not_negative"):
        insert_raw(db, "test.add", '{"a": 1}', attempts=-1)


def test_a_payload_that_can_never_fit_fails_on_its_first_attempt(db: Engine) -> None:
    missing = insert_raw(db, "test.add", '{"b": 2}', max_attempts=10)
    wrong = insert_raw(db, "test.add", '{"a": "one"}', max_attempts=10)
    drained = drain(db)
    assert sorted(drained.failed) == sorted([missing, wrong])
    assert job(db, missing).attempts == 1
    assert "missing a required argument" in job(db, missing).last_error
    assert "'a' must be int" in job(db, wrong).last_error


def test_an_unknown_name_is_retried_since_a_newer_worker_may_know_it(db: Engine) -> None:
    unknown = insert_raw(db, "from.the.future", "{}", max_attempts=10)
    drained = drain(db)
    assert drained.retried == [unknown]
    assert job(db, unknown).state == "queued"


def test_outcomes_the_database_would_refuse_are_still_saved(db: Engine) -> None:
    with Session(db) as session:
        result = enqueue(session, "test.nul_result")
        error = enqueue(session, "test.nul_error")
        after = enqueue(session, "test.add", {"a": 1}, priority=-1)
        session.commit()
    drained = drain(db)
    assert drained.succeeded == [result, after] and drained.failed == [error]
    assert job(db, result).result is None  # not storable, so not stored
    assert "bad \\x00 byte and a lone \\udc80 surrogate" in job(db, error).last_error
