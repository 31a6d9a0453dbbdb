"""Enqueueing: inside the caller's transaction, validated before anything is written."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.jobs import (
    InvalidPayload,
    JobRequest,
    UnknownJob,
    cancel,
    enqueue,
    enqueue_many,
    job,
    registry,
)
from app.models import Job


def count_jobs(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Job)) or 0


def test_enqueue_in_rolled_back_transaction_leaves_nothing(session: Session) -> None:
    enqueue(session, "test.add", {"a": 1})
    session.rollback()
    assert count_jobs(session) == 0


def test_enqueue_does_not_commit_for_the_caller(session: Session, db: object) -> None:
    enqueue(session, "test.add", {"a": 1})
    with Session(session.get_bind()) as other:
        assert count_jobs(other) == 0
    session.commit()
    with Session(session.get_bind()) as other:
        assert count_jobs(other) == 1


def test_enqueued_job_carries_the_message_and_defaults(session: Session) -> None:
    job_id = enqueue(session, "test.add", {"a": 1, "b": 2}, context="signup of user 7")
    row = session.get_one(Job, job_id)
    assert (row.name, row.payload, row.state) == ("test.add", {"a": 1, "b": 2}, "queued")
    assert (row.queue, row.priority, row.attempts, row.max_attempts) == ("default", 0, 0, 10)
    assert row.context == "signup of user 7"
    assert row.run_at.tzinfo is not None


def test_unknown_job_name_is_rejected_at_enqueue(session: Session) -> None:
    with pytest.raises(UnknownJob, match="no handler is registered for job 'nope'"):
        enqueue(session, "nope", {})
    assert count_jobs(session) == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "missing a required argument: 'a'"),
        ({"a": 1, "c": 3}, "unexpected keyword argument 'c'"),
        ({"a": "1"}, "'a' must be int, got str"),
        ({"a": True}, "'a' must be int, got bool"),
        ({"a": float("nan")}, "is not JSON"),
        ({"a": 1, "b": object()}, "is not JSON"),
        ([1, 2], "must be a JSON object, got list"),
        ([], "must be a JSON object, got list"),
        ("a=1", "must be a JSON object, got str"),
    ],
)
def test_payload_that_does_not_fit_is_rejected_at_enqueue(
    session: Session, payload: object, message: str
) -> None:
    with pytest.raises(InvalidPayload, match=message):
        enqueue(session, "test.add", payload)  # type: ignore[arg-type]
    assert count_jobs(session) == 0


def test_payload_may_not_fill_the_context_parameter(session: Session) -> None:
    with pytest.raises(InvalidPayload, match="may not set 'ctx'"):
        enqueue(session, "test.progress", {"steps": 1, "ctx": {}})


def test_options_override_the_handler_defaults(session: Session) -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    job_id = enqueue(
        session, "test.add", {"a": 1}, queue="mail", priority=5, run_at=when, max_attempts=2
    )
    row = session.get_one(Job, job_id)
    assert (row.queue, row.priority, row.run_at, row.max_attempts) == ("mail", 5, when, 2)


def test_delay_is_counted_on_the_database_clock(session: Session) -> None:
    job_id = enqueue(session, "test.add", {"a": 1}, delay=timedelta(minutes=5))
    row = session.get_one(Job, job_id)
    db_now = session.scalar(text("SELECT now()"))
    assert row.run_at - db_now == timedelta(minutes=5)


def test_naive_run_at_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        enqueue(session, "test.add", {"a": 1}, run_at=datetime(2030, 1, 1))


def test_decorator_defaults_apply() -> None:
    @job("test.defaults", queue="reports", priority=3, max_attempts=4, timeout=9)
    def handler() -> None: ...

    spec = registry.get("test.defaults")
    assert (spec.queue, spec.priority, spec.max_attempts, spec.timeout) == ("reports", 3, 4, 9)


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @job("test.add")
        def other(a: int) -> None: ...


def test_unique_key_returns_the_live_job_instead_of_a_duplicate(session: Session) -> None:
    first = enqueue(session, "test.add", {"a": 1}, unique_key="report:7")
    second = enqueue(session, "test.add", {"a": 2}, unique_key="report:7")
    assert first == second
    assert count_jobs(session) == 1


def test_unique_key_is_free_again_once_the_job_finished(session: Session) -> None:
    first = enqueue(session, "test.add", {"a": 1}, unique_key="report:7")
    session.execute(text("UPDATE jobs SET state = 'succeeded' WHERE job_id = :id"), {"id": first})
    second = enqueue(session, "test.add", {"a": 1}, unique_key="report:7")
    assert first != second


def test_unique_key_holds_across_concurrent_transactions(session: Session) -> None:
    first = enqueue(session, "test.add", {"a": 1}, unique_key="k")
    session.commit()
    with Session(session.get_bind()) as other:
        assert enqueue(other, "test.add", {"a": 1}, unique_key="k") == first


def test_enqueue_many_writes_every_job_in_one_statement(session: Session) -> None:
    requests = [JobRequest("test.add", {"a": n}, priority=n % 3) for n in range(500)]
    ids = enqueue_many(session, requests)
    assert len(set(ids)) == 500
    assert count_jobs(session) == 500
    assert session.scalar(select(func.sum(Job.priority))) == sum(n % 3 for n in range(500))


def test_enqueue_many_honours_per_job_options(session: Session) -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    at, later, elsewhere = enqueue_many(
        session,
        [
            JobRequest("test.add", {"a": 1}, run_at=when),
            JobRequest("test.add", {"a": 2}, delay=60, max_attempts=2, context="batch"),
            JobRequest("test.add", {"a": 3}, queue="mail"),
        ],
    )
    db_now = session.scalar(text("SELECT now()"))
    assert session.get_one(Job, at).run_at == when
    row = session.get_one(Job, later)
    assert (row.run_at - db_now, row.max_attempts, row.context) == (
        timedelta(minutes=1),
        2,
        "batch",
    )
    assert session.get_one(Job, elsewhere).queue == "mail"


def test_job_ids_sort_by_creation_time(session: Session) -> None:
    first = enqueue(session, "test.add", {"a": 1})
    time.sleep(0.002)
    second = enqueue(session, "test.add", {"a": 1})
    assert first < second and first.version == 7


def test_enqueue_many_validates_everything_before_writing(session: Session) -> None:
    with pytest.raises(InvalidPayload):
        enqueue_many(session, [JobRequest("test.add", {"a": 1}), JobRequest("test.add", {})])
    assert count_jobs(session) == 0


def test_enqueue_many_skips_live_unique_keys(session: Session) -> None:
    enqueue(session, "test.add", {"a": 1}, unique_key="k")
    ids = enqueue_many(
        session,
        [
            JobRequest("test.add", {"a": 1}, unique_key="k"),
            JobRequest("test.add", {"a": 2}, unique_key="other"),
        ],
    )
    assert len(ids) == 1
    assert count_jobs(session) == 2


def test_cancel_stops_a_queued_job_but_not_a_finished_one(session: Session) -> None:
    job_id = enqueue(session, "test.add", {"a": 1})
    assert cancel(session, job_id)
    assert session.get_one(Job, job_id).state == "cancelled"
    assert not cancel(session, job_id)


def test_rows_inserted_by_hand_get_time_ordered_ids_too(session: Session) -> None:
    first = enqueue(session, "test.add", {"a": 1})
    session.commit()
    time.sleep(0.002)
    raw = session.execute(text("INSERT INTO jobs (name) VALUES ('test.noop') RETURNING job_id"))
    by_hand = raw.scalar_one()
    assert by_hand.version == 7 and by_hand > first


def test_ids_made_in_one_process_sort_in_the_order_they_were_made() -> None:
    from app.jobs.ids import new_job_id, new_job_ids

    singles = [new_job_id() for _ in range(5_000)]  # many per millisecond
    bulk = new_job_ids(10_000)
    after = new_job_id()
    made = [*singles, *bulk, after]
    assert made == sorted(made) and len(set(made)) == len(made)


def test_a_large_batch_goes_in_whole_with_every_option(session: Session) -> None:
    requests = [
        JobRequest("test.add", {"a": n, "b": -n}, queue="bulk", priority=n % 3, context="bulk")
        for n in range(600)
    ] + [JobRequest("test.per_user", {"user_id": n}) for n in range(3)]
    ids = enqueue_many(session, requests)
    session.commit()
    rows = {j.job_id: j for j in session.query(Job)}
    assert list(rows) and sorted(ids) == sorted(rows) and ids == sorted(ids)
    first = rows[ids[0]]
    assert (first.payload, first.queue, first.priority, first.context) == (
        {"a": 0, "b": 0},
        "bulk",
        0,
        "bulk",
    )
    assert [rows[i].state for i in ids[-3:]] == ["waiting"] * 3
    assert rows[ids[-1]].flow_key == "user:2"
