"""What operators do to jobs, and what the dashboard and metrics read."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import enqueue, metrics, operations, stats
from app.jobs.maintenance import prune_jobs
from app.jobs.testing import drain
from app.models import Job
from tests import factory


def failed_job(session: Session, **options: object) -> uuid.UUID:
    job_id = enqueue(session, "test.discard", {}, **options)  # type: ignore[arg-type]
    session.commit()
    drain(session.get_bind())  # type: ignore[arg-type]
    assert session.get_one(Job, job_id).state == "failed"
    return job_id


def test_retry_queues_a_failed_job_now_with_one_more_attempt(session: Session) -> None:
    job_id = failed_job(session, max_attempts=1)
    assert operations.retry(session, job_id)
    session.commit()
    row = session.get_one(Job, job_id)
    session.refresh(row)
    assert (row.state, row.max_attempts, row.finished_at) == ("queued", 2, None)


def test_retry_refuses_jobs_that_did_not_fail(session: Session) -> None:
    job_id = enqueue(session, "test.add", {"a": 1})
    assert not operations.retry(session, job_id)


def test_retry_waits_while_another_live_job_holds_the_unique_key(session: Session) -> None:
    job_id = failed_job(session, unique_key="k")
    enqueue(session, "test.add", {"a": 1}, unique_key="k")
    assert not operations.retry(session, job_id)


def test_cancel_takes_queued_and_running_jobs_not_finished_ones(db: Engine) -> None:
    with Session(db) as session:
        queued = enqueue(session, "test.add", {"a": 1})
        running = enqueue(session, "test.add", {"a": 2})
        session.execute(
            text("UPDATE jobs SET state = 'running' WHERE job_id = :id"), {"id": running}
        )
        assert operations.cancel(session, queued) and operations.cancel(session, running)
        assert not operations.cancel(session, queued)
        session.commit()
        assert {session.get_one(Job, i).state for i in (queued, running)} == {"cancelled"}


def test_delete_removes_a_finished_job_and_tallies_it(session: Session) -> None:
    job_id = failed_job(session)
    assert operations.delete(session, job_id)
    session.commit()
    assert session.get(Job, job_id) is None
    tally = session.execute(text("SELECT queue, state, count FROM job_tallies")).all()
    assert [tuple(t) for t in tally] == [("default", "failed", 1)]


def test_bulk_retry_and_delete_take_failed_jobs_matching_the_filter(session: Session) -> None:
    mail = [failed_job(session, queue="mail") for _ in range(3)]
    other = failed_job(session, queue="other")
    assert operations.retry_failed(session, queue="mail") == 3
    assert operations.delete_failed(session, name="test.discard") == 1
    session.commit()
    assert {session.get_one(Job, i).state for i in mail} == {"queued"}
    assert session.get(Job, other) is None


def test_prune_tallies_what_it_deletes_so_counters_never_go_down(
    db: Engine, settings: Settings
) -> None:
    with Session(db) as session:
        for n in range(3):
            enqueue(session, "test.add", {"a": n})
        session.commit()
    drain(db)
    with db.connect() as conn:
        before = metrics.metrics_snapshot(conn, alive_within=10).finished_total
    assert prune_jobs(factory.context(db, settings), older_than_days=0) == 3
    with db.connect() as conn:
        after = metrics.metrics_snapshot(conn, alive_within=10).finished_total
    assert before == after == {("succeeded", "default"): 3}


def test_job_list_pages_newest_first_without_gaps_or_repeats(session: Session) -> None:
    ids = []
    for n in range(7):
        ids.append(enqueue(session, "test.add", {"a": n}))
        session.commit()
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        rows, cursor = stats.list_jobs(session.connection(), stats.JobFilter(), cursor, limit=3)
        seen += [r.job_id for r in rows]
        if cursor is None:
            break
        cursor = stats.Cursor.decode(cursor.encode())  # as it travels through a URL
    assert seen == list(reversed(ids))


def test_job_list_filters_by_state_queue_and_name(session: Session) -> None:
    failed = failed_job(session, queue="mail")
    enqueue(session, "test.add", {"a": 1}, queue="mail")
    session.commit()
    connection = session.connection()
    assert [
        r.job_id
        for r in stats.list_jobs(connection, stats.JobFilter(state="failed", queue="mail"))[0]
    ] == [failed]
    assert len(stats.list_jobs(connection, stats.JobFilter(name="test.add"))[0]) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "2030-01-01_notauuid",
        "nope_" + str(uuid.uuid4()),
        "2030-01-01T00:00:00_" + str(uuid.uuid4()),
    ],
)
def test_a_malformed_cursor_is_refused(garbage: str) -> None:
    with pytest.raises(ValueError):
        stats.Cursor.decode(garbage)


def test_overview_counts_and_warns_about_jobs_no_live_worker_knows(db: Engine) -> None:
    with Session(db) as session:
        enqueue(session, "test.add", {"a": 1}, queue="mail")
        session.execute(text("INSERT INTO jobs (name) VALUES ('gone.away')"))
        session.execute(
            text(
                "INSERT INTO workers (worker_id, hostname, pid, job_names) "
                "VALUES ('w', 'h', 1, ARRAY['test.add'])"
            )
        )
        session.commit()
    time.sleep(0.01)
    with db.connect() as conn:
        view = stats.overview(conn)
    assert view.counts["queued"] == {"mail": 1, "default": 1}
    assert view.orphaned == {"gone.away": 1}
    assert view.oldest_due_age is not None and view.oldest_due_age > 0
    assert len(view.per_minute) == 60
    assert [p.worker_id for p in view.processes] == ["w"]


def test_metrics_render_in_prometheus_text_format(db: Engine) -> None:
    with db.begin() as conn:  # enqueue refuses such a name; a row written by SQL may have it
        conn.execute(
            text("INSERT INTO jobs (name, payload, queue) VALUES ('test.add', '{}', :queue)"),
            {"queue": 'we"ird'},
        )
    with db.connect() as conn:
        text_format = metrics.render(metrics.metrics_snapshot(conn, alive_within=10))
    assert "# TYPE pillars_jobs gauge" in text_format
    assert 'pillars_jobs{state="queued",queue="we\\"ird"} 1' in text_format
    assert 'pillars_processes_alive{kind="worker"} 0' in text_format
