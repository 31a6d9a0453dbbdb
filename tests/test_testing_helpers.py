"""The helpers an app's own tests use: drain the queue here, assert what was enqueued."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.jobs import enqueue
from app.jobs.testing import assert_enqueued, drain
from app.models import Job
from tests import factory


def test_drain_runs_every_due_job_and_reports_outcomes(db: Engine) -> None:
    with Session(db) as session:
        ok = [enqueue(session, "test.add", {"a": n}) for n in range(3)]
        bad = enqueue(session, "test.discard", {})
        later = enqueue(session, "test.add", {"a": 1}, delay=3600)
        session.commit()
    drained = drain(db)
    assert sorted(drained.succeeded) == sorted(ok)
    assert drained.failed == [bad]
    with Session(db) as session:
        assert session.get_one(Job, later).state == "queued"
        assert session.get_one(Job, ok[0]).result == 0


def test_drain_stops_at_jobs_pushed_into_the_future_by_backoff(db: Engine) -> None:
    failing = factory.job(db, "test.fail", {})
    drained = drain(db)
    assert drained.retried == [failing]
    assert drain(db).total == 0


def test_drain_limited_to_queues(db: Engine) -> None:
    with Session(db) as session:
        mail = enqueue(session, "test.add", {"a": 1}, queue="mail")
        enqueue(session, "test.add", {"a": 1}, queue="other")
        session.commit()
    assert drain(db, queues=["mail"]).succeeded == [mail]


def test_assert_enqueued_matches_name_and_payload_subset(session: Session) -> None:
    enqueue(session, "test.add", {"a": 1, "b": 2})
    [found] = assert_enqueued(session, "test.add", {"a": 1})
    assert found.payload == {"a": 1, "b": 2}


def test_assert_enqueued_explains_what_is_queued_when_it_fails(session: Session) -> None:
    enqueue(session, "test.add", {"a": 1})
    with pytest.raises(AssertionError, match=r"found 0; queued:\n  test.add \{'a': 1\}"):
        assert_enqueued(session, "test.add", {"a": 2})
