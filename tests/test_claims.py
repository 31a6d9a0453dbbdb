"""Claiming, fencing, retries and rescue, against a real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import (
    JobRequest,
    claims,
    enqueue,
    enqueue_many,
    pause_queue,
    processes,
    resume_queue,
)
from app.jobs.execution import Claimed, Outcome, backoff, execute
from app.jobs.testing import drain
from app.models import Job
from tests import factory
from tests.processes import wait_for


def claim(
    engine: Engine, worker: str, limit: int = 10, queues: list[str] | None = None
) -> list[Claimed]:
    with engine.begin() as conn:
        return claims.claim(conn, worker, queues, limit)


def save(engine: Engine, worker: str, outcomes: list[Outcome]) -> claims.Saved:
    with engine.begin() as conn:
        return claims.save_outcomes(conn, worker, outcomes)


def settle(engine: Engine, seconds: float = 1.5) -> None:
    """Wait until the server has been up `seconds`: heartbeats count from its start."""
    with engine.connect() as conn:
        uptime = conn.execute(text("SELECT extract(epoch FROM now() - pg_postmaster_start_time())"))
        time.sleep(max(0.0, seconds - float(uptime.scalar_one())))


def job_row(engine: Engine, job_id: uuid.UUID) -> Job:
    with Session(engine) as session:
        return session.get_one(Job, job_id)


def test_two_concurrent_claimers_never_get_the_same_job(db: Engine) -> None:
    with Session(db) as session:
        enqueue_many(session, [JobRequest("test.noop")] * 2_000)
        session.commit()
    taken: dict[str, list[uuid.UUID]] = {"a": [], "b": [], "c": []}

    def take(worker: str) -> None:
        while batch := claim(db, worker, limit=7):
            taken[worker] += [j.job_id for j in batch]

    threads = [threading.Thread(target=take, args=(w,)) for w in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [job_id for ids in taken.values() for job_id in ids]
    assert len(everything) == 2_000
    assert len(set(everything)) == 2_000


def test_claim_takes_higher_priority_first_then_oldest(db: Engine) -> None:
    with Session(db) as session:
        low = enqueue(session, "test.add", {"a": 1}, priority=0)
        high = enqueue(session, "test.add", {"a": 2}, priority=9)
        session.commit()
    assert [j.job_id for j in claim(db, "w", limit=2)] == [high, low]


def test_claim_takes_only_due_jobs_of_the_given_queues(db: Engine) -> None:
    with Session(db) as session:
        later = enqueue(session, "test.add", {"a": 1}, delay=60)
        mail = enqueue(session, "test.add", {"a": 1}, queue="mail")
        other = enqueue(session, "test.add", {"a": 1}, queue="other")
        session.commit()
    assert [j.job_id for j in claim(db, "w", queues=["mail"])] == [mail]
    assert [j.job_id for j in claim(db, "w", queues=["mail", "other"])] == [other]
    assert claim(db, "w") == []
    assert job_row(db, later).state == "queued"


def test_paused_queue_is_not_claimed_until_resumed(db: Engine) -> None:
    with Session(db) as session:
        job_id = enqueue(session, "test.add", {"a": 1}, queue="mail")
        pause_queue(session, "mail", paused_by="ops")
        session.commit()
    assert claim(db, "w") == []
    assert claim(db, "w", queues=["mail"]) == []
    with Session(db) as session:
        resume_queue(session, "mail")
        session.commit()
    assert [j.job_id for j in claim(db, "w")] == [job_id]


def test_claim_counts_the_attempt_and_records_the_owner(db: Engine) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    [claimed] = claim(db, "worker-1")
    row = job_row(db, job_id)
    assert (claimed.attempt, row.attempts, row.state, row.locked_by) == (
        1,
        1,
        "running",
        "worker-1",
    )
    assert row.started_at is not None and row.heartbeat_at is not None


def test_success_is_saved_with_the_result(db: Engine, settings: Settings) -> None:
    job_id = factory.job(db, "test.add", {"a": 2, "b": 3})
    [claimed] = claim(db, "w")
    saved = save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, job_id)
    assert saved.succeeded == [job_id]
    assert (row.state, row.result, row.finished_at is not None) == ("succeeded", 5, True)


def test_failure_goes_back_to_the_queue_with_backoff_and_the_error(
    db: Engine, settings: Settings
) -> None:
    job_id = factory.job(db, "test.fail", {"message": "smtp down"})
    [claimed] = claim(db, "w")
    save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, job_id)
    assert row.state == "queued"
    assert row.last_error is not None and row.last_error.startswith("RuntimeError: smtp down")
    assert "Traceback" in row.last_error
    assert row.errors[0]["attempt"] == 1 and row.errors[0]["error"] == "RuntimeError: smtp down"
    with db.connect() as conn:
        wait = conn.execute(text("SELECT run_at - now() FROM jobs")).scalar_one()
    assert 0.5 < wait.total_seconds() <= 2.5


def test_failure_on_the_last_attempt_ends_failed_with_every_error_kept(
    db: Engine, settings: Settings
) -> None:
    job_id = factory.job(db, "test.fail", {}, max_attempts=2)
    for _ in range(2):
        with db.begin() as conn:
            conn.execute(text("UPDATE jobs SET run_at = now() WHERE job_id = :id"), {"id": job_id})
        [claimed] = claim(db, "w")
        save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, job_id)
    assert (row.state, row.attempts, len(row.errors)) == ("failed", 2, 2)
    assert row.finished_at is not None


def test_backoff_grows_exponentially_with_jitter() -> None:
    assert all(1.5 <= backoff(1) <= 2.5 for _ in range(50))
    assert all(48 <= backoff(6) <= 80 for _ in range(50))
    assert backoff(40) <= 3600 * 1.25


def test_retry_exception_reschedules_after_its_delay(db: Engine, settings: Settings) -> None:
    job_id = factory.job(db, "test.retry_later", {"delay": 30})
    [claimed] = claim(db, "w")
    save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, job_id)
    assert row.state == "queued" and row.last_error == "retry requested: not yet"
    with db.connect() as conn:
        wait = conn.execute(text("SELECT run_at - now() FROM jobs")).scalar_one()
    assert 29 < wait.total_seconds() <= 30


def test_discard_exception_fails_the_job_without_retrying(db: Engine, settings: Settings) -> None:
    job_id = factory.job(db, "test.discard", {})
    [claimed] = claim(db, "w")
    save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, job_id)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "discarded: payload refers to a deleted user"


def test_a_row_with_an_unknown_name_fails_with_a_clear_reason(
    db: Engine, settings: Settings
) -> None:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO jobs (name, payload, max_attempts) VALUES ('gone.away', '{}', 1)")
        )
    [claimed] = claim(db, "w")
    save(db, "w", [execute(claimed, db, settings)])
    row = job_row(db, claimed.job_id)
    assert row.state == "failed"
    assert row.last_error is not None
    assert "no handler is registered for job 'gone.away'" in row.last_error


def test_a_row_with_a_broken_payload_fails_with_a_clear_reason(
    db: Engine, settings: Settings
) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (name, payload, max_attempts) "
                "VALUES ('test.add', '{\"a\": \"x\"}', 1)"
            )
        )
    [claimed] = claim(db, "w")
    save(db, "w", [execute(claimed, db, settings)])
    assert "'a' must be int" in (job_row(db, claimed.job_id).last_error or "")


def test_a_worker_that_lost_its_claim_cannot_overwrite_the_new_owner(
    db: Engine, settings: Settings
) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    [frozen] = claim(db, "frozen")
    with db.begin() as conn:  # rescued while frozen, then claimed by another worker
        conn.execute(text("UPDATE jobs SET state = 'queued' WHERE job_id = :id"), {"id": job_id})
    [current] = claim(db, "current")
    late = save(db, "frozen", [Outcome(frozen, ok=False, message="late failure")])
    assert late.lost and not late.failed and not late.retried
    assert job_row(db, job_id).state == "running"
    save(db, "current", [execute(current, db, settings)])
    row = job_row(db, job_id)
    assert (row.state, row.locked_by, row.attempts) == ("succeeded", "current", 2)


def test_same_worker_name_with_an_old_attempt_is_fenced_too(db: Engine, settings: Settings) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    [old] = claim(db, "w")
    with db.begin() as conn:
        conn.execute(text("UPDATE jobs SET state = 'queued' WHERE job_id = :id"), {"id": job_id})
    claim(db, "w")
    assert save(db, "w", [execute(old, db, settings)]).lost


def test_handler_reports_progress_through_its_context(db: Engine, settings: Settings) -> None:
    with Session(db) as session:
        enqueue(session, "test.progress", {"steps": 4})
        session.commit()
    [claimed] = claim(db, "w")
    seen: list[tuple[float | None, str | None]] = []
    outcome = execute(claimed, db, settings, lambda f, m: seen.append((f, m)))
    assert seen == [
        (0.25, "step 1 of 4"),
        (0.5, "step 2 of 4"),
        (0.75, "step 3 of 4"),
        (1.0, "step 4 of 4"),
    ]
    assert outcome.result == '"attempt 1"'


def test_progress_is_written_only_by_the_current_owner(db: Engine) -> None:
    job_id = factory.job(db, "test.progress", {"steps": 4})
    [claimed] = claim(db, "w")
    with db.begin() as conn:
        assert claims.set_progress(conn, "w", claimed, 0.5, "half way")
        assert not claims.set_progress(conn, "someone-else", claimed, 0.9, "late")
    row = job_row(db, job_id)
    assert (row.progress, row.progress_message) == (0.5, "half way")


def test_stale_heartbeat_is_rescued_back_to_the_queue(db: Engine) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    claim(db, "frozen")
    settle(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE jobs SET heartbeat_at = now() - interval '1 hour'"))
        rescued = claims.rescue(conn, grace=1, stale=1)
    assert [r.job_id for r in rescued] == [job_id]
    row = job_row(db, job_id)
    assert (row.state, row.locked_by) == ("queued", None)
    assert "sent no heartbeat" in (row.last_error or "")


def test_live_heartbeat_is_never_rescued(db: Engine) -> None:
    with Session(db) as session:
        enqueue(session, "test.add", {"a": 1})
        session.commit()
    claim(db, "busy")
    with db.begin() as conn:
        assert claims.rescue(conn, grace=0.001, stale=60) == []


def test_job_of_a_worker_whose_session_ended_is_rescued_at_once(
    db: Engine, database_url: str
) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    settle(db)
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as life:
        processes.register(life, processes.Identity("dead", "worker"))
        claim(db, "dead")
        with db.begin() as conn:
            conn.execute(text("UPDATE workers SET heartbeat_at = now() - interval '1 minute'"))
            assert claims.rescue(conn, grace=1, stale=3600) == []  # lock still held

    def rescue() -> list[claims.Rescued]:
        with db.begin() as conn:
            return claims.rescue(conn, grace=1, stale=3600)

    # The session ended with its process; the server lets go of the lock a moment later.
    rescued = wait_for(rescue, timeout=10, what="the lock to be released")
    with db.connect() as conn:
        workers = conn.execute(text("SELECT count(*) FROM workers")).scalar_one()
    assert [r.job_id for r in rescued] == [job_id]
    assert "its worker dead died" in rescued[0].reason
    assert workers == 0


def test_rescue_on_the_last_attempt_fails_the_job_and_says_why(db: Engine) -> None:
    job_id = factory.job(db, "test.add", {"a": 1}, max_attempts=1)
    claim(db, "frozen")
    settle(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE jobs SET heartbeat_at = now() - interval '1 hour'"))
        claims.rescue(conn, grace=1, stale=1)
    row = job_row(db, job_id)
    assert row.state == "failed"
    assert (row.last_error or "").startswith("attempt 1 of 1 lost: its worker frozen")


def test_release_refunds_the_attempt_and_requeues(db: Engine) -> None:
    job_id = factory.job(db, "test.add", {"a": 1})
    held = claim(db, "w")
    with db.begin() as conn:
        assert claims.release(conn, "w", held) == [job_id]
    row = job_row(db, job_id)
    assert (row.state, row.attempts, row.locked_by) == ("queued", 0, None)


def test_a_rescued_job_keeps_its_place_in_the_queue(db: Engine) -> None:
    first = factory.job(db, "test.add", {"a": 1})
    second = factory.job(db, "test.add", {"a": 2})
    [claimed] = claim(db, "frozen", limit=1)
    assert claimed.job_id == first
    settle(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE jobs SET heartbeat_at = now() - interval '1 hour'"))
        assert [r.job_id for r in claims.rescue(conn, grace=1, stale=1)] == [first]
    assert [j.job_id for j in claim(db, "next", limit=1)] == [first]  # not behind `second`
    assert job_row(db, second).state == "queued"


def test_the_handler_gets_its_occurrence_in_the_schedules_timezone(
    db: Engine, tmp_path: Path
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    occurrence = datetime(2026, 3, 1, 0, 30, tzinfo=berlin)  # 2026-02-28 23:30 UTC
    path = tmp_path / "occurrences"
    with Session(db) as session:
        enqueue(
            session,
            "test.occurrence",
            {"path": str(path)},
            cron_name="digest.daily",
            scheduled_for=occurrence,
        )
        session.commit()
    drain(db)
    [written] = path.read_text().splitlines()
    assert datetime.fromisoformat(written) == occurrence
    assert datetime.fromisoformat(written).date().isoformat() == "2026-03-01"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "a" * 5000])
def test_an_occurrence_in_a_zone_this_machine_cannot_find_comes_in_utc(
    db: Engine, tmp_path: Path, zone: str
) -> None:
    path = tmp_path / "occurrences"
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (name, payload, scheduled_for, scheduled_zone)"
                " VALUES ('test.occurrence', CAST(:payload AS jsonb), :at, :zone)"
            ),
            {"payload": json.dumps({"path": str(path)}), "at": "2026-03-01 00:30+00", "zone": zone},
        )
    assert drain(db).failed == []
    [written] = path.read_text().splitlines()
    assert written == "2026-03-01T00:30:00+00:00"
