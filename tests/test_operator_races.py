"""An operator's action racing a worker, another operator or the promoter leaves every
job where it should be: nothing running is deleted, nothing retried is lost, no
counter goes down, and no waiting job is left behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.jobs import claims, enqueue, operations, sql
from app.jobs.execution import Outcome
from app.jobs.metrics import metrics_snapshot
from app.jobs.testing import drain
from tests import factory


def state(engine: Engine, job_id: uuid.UUID) -> str | None:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT state FROM jobs WHERE job_id = :id"), {"id": job_id})
        return found.scalar()


@contextmanager
def held(engine: Engine, statement: str, **params: Any) -> Iterator[Connection]:
    """A transaction that has run `statement` and not yet committed (a worker's claim,
    another operator's action); it commits when the block ends."""
    with engine.connect() as conn:
        conn.execute(text(statement), params)
        yield conn
        conn.commit()


def acted(engine: Engine, action: Callable[[Session], Any]) -> Any:
    """Run an operator's action in its own session and commit it, within 10 s."""
    outcome: list[Any] = []

    def run() -> None:
        with Session(engine) as session:
            outcome.append(action(session))
            session.commit()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert outcome, "the action waited on the other transaction"
    return outcome[0]


CLAIM = "UPDATE jobs SET state = 'running', locked_by = 'w1', attempts = attempts + 1"


def test_a_job_being_claimed_is_not_deleted(db: Engine) -> None:
    job_id = factory.job(db)
    with held(db, f"{CLAIM} WHERE job_id = :id", id=job_id):
        assert acted(db, lambda s: operations.delete(s, job_id)) is False
    assert state(db, job_id) == "running"


def test_a_failed_job_being_retried_is_not_deleted_as_failed(db: Engine) -> None:
    job_id = factory.row(db, state="failed")
    with held(db, "UPDATE jobs SET state = 'queued' WHERE job_id = :id", id=job_id):
        assert acted(db, lambda s: operations.delete_failed(s)) == 0
    assert state(db, job_id) == "queued"


def test_failed_jobs_sharing_a_unique_key_are_retried_one_per_key(db: Engine) -> None:
    older = factory.row(db, state="failed", unique_key="report:7")
    newer = factory.row(db, state="failed", unique_key="report:7")
    plain = factory.row(db, state="failed")
    with Session(db) as session:
        assert operations.retry_failed(session) == 2
        session.commit()
    assert (state(db, older), state(db, newer), state(db, plain)) == ("failed", "queued", "queued")


def test_every_retryable_job_is_retried_however_many_are_held_back(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs held back by a live key took places in each batch: the first short batch
    ended the retry with retryable jobs left failed."""
    monkeypatch.setattr(operations, "BATCH", 4)
    factory.row(db, state="queued", unique_key="live")
    free = [factory.row(db, state="failed") for _ in range(7)]
    held_back = [factory.row(db, state="failed", unique_key="live") for _ in range(3)]
    with Session(db) as session:
        assert operations.retry_failed(session) == 7
        session.commit()
    assert [state(db, j) for j in free] == ["queued"] * 7
    assert [state(db, j) for j in held_back] == ["failed"] * 3


def test_retrying_a_job_keeps_the_finished_counter_from_going_down(db: Engine) -> None:
    job_id = factory.row(db, state="failed")

    def failed_total() -> int:
        with db.connect() as conn:
            return metrics_snapshot(conn, alive_within=30).finished_total[("failed", "default")]

    assert failed_total() == 1
    with Session(db) as session:
        assert operations.retry(session, job_id)
        session.commit()
    assert failed_total() == 1


def test_cancelling_the_next_waiting_job_passes_the_turn_to_the_one_behind(db: Engine) -> None:
    first = factory.job(db, "test.echo", {"data": 1}, concurrency_key="user:1")
    assert claims.promote(db) == 1
    with db.begin() as conn:
        [running] = claims.claim(conn, "w1", None, 1)
    second = factory.job(db, "test.echo", {"data": 2}, concurrency_key="user:1")
    third = factory.job(db, "test.echo", {"data": 3}, concurrency_key="user:1")
    assert claims.promote(db) == 0  # the key is full
    with db.begin() as conn:  # the first succeeds: the second is next, and marked fresh
        claims.save_outcomes(conn, "w1", [Outcome(running, ok=True)])
    with Session(db) as session:
        assert operations.cancel(session, second)
        session.commit()
    assert claims.promote(db) == 1
    assert state(db, third) == "queued" and running.job_id == first


def test_a_head_of_line_another_promoter_holds_is_not_overtaken(db: Engine) -> None:
    """Two promoters at once: the one that skipped the locked first job let the second
    in, and an ordering key ran out of order."""
    first = factory.job(db, "test.echo", {"data": 1}, ordering_key="acct:1")
    with db.connect() as other:
        taken = other.execute(sql.TAKE_FRESH, {"limit": 200}).scalars().all()
        assert taken == ["acct:1"]
        second = factory.job(db, "test.echo", {"data": 2}, ordering_key="acct:1")
        assert claims.promote(db) == 0
        other.execute(sql.LOCK_FLOW_KEYS, {"namespace": sql.FLOW_NAMESPACE, "keys": taken})
        assert other.execute(sql.PROMOTE, {"keys": taken}).scalar_one() == 1
        other.commit()
    assert (state(db, first), state(db, second)) == ("queued", "waiting")
    drain(db)


def test_a_unique_key_is_held_by_a_waiting_job_too(db: Engine) -> None:
    """Two waiting jobs of one unique key were let in together and broke every promotion
    (or, skipped, one waited for good): a waiting job holds its key like a queued one."""
    with Session(db) as session:
        first = enqueue(session, "test.echo", {"data": 1}, unique_key="u", concurrency_key="k")
        again = enqueue(session, "test.echo", {"data": 2}, unique_key="u", concurrency_key="k")
        plain = enqueue(session, "test.echo", {"data": 3}, unique_key="u")
        session.commit()
    assert again == first and plain == first
    assert claims.promote(db) == 1
    assert state(db, first) == "queued"


def test_retries_racing_for_one_unique_key_let_one_job_wait(db: Engine) -> None:
    a = factory.row(db, "test.echo", {"data": 1}, state="failed")
    b = factory.row(db, "test.echo", {"data": 2}, state="failed")
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET unique_key = 'u', flow_key = 'k', flow_kind = 'concurrency',"
                " flow_limit = 2"
            )
        )
    with Session(db) as one, Session(db) as two:
        assert operations.retry(one, a)
        outcome: list[bool] = []
        racing = threading.Thread(target=lambda: outcome.append(operations.retry(two, b)))
        racing.start()
        time.sleep(0.5)  # the second retry now waits on the first's index entry
        one.commit()
        racing.join(10)
        two.commit()
    assert outcome == [False]
    assert (state(db, a), state(db, b)) == ("waiting", "failed")
    assert claims.promote(db) == 1
