"""The worker as a real process: started, signalled and killed like in production."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many, operations
from tests import factory
from tests.processes import ROOT, catches, start, stop, wait_for

pytestmark = pytest.mark.slow


def states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM jobs GROUP BY state"))
        return {state: count for state, count in rows}


def job(engine: Engine, job_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).one()


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_worker_drains_the_queue_and_exits_cleanly(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(db) as session:
        enqueue_many(session, [JobRequest("test.add", {"a": n}) for n in range(300)])
        session.commit()
    worker = start("worker.py", process_env, "--concurrency", "4", log=tmp_path / "w.log")
    try:
        wait_for(lambda: states(db) == {"succeeded": 300}, what="300 jobs to succeed")
        with db.connect() as conn:
            registered = conn.execute(text("SELECT concurrency FROM workers")).scalar_one()
        assert registered == 4
    finally:
        assert stop(worker) == 0
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workers")).scalar_one() == 0


def test_worker_wakes_on_notify_for_jobs_enqueued_later(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**process_env, "WORKER_POLL_INTERVAL": "30"}  # only NOTIFY can wake it in time
    worker = start("worker.py", env, log=tmp_path / "w.log")
    try:
        wait_for(lambda: "listening" in (tmp_path / "w.log").read_text(), what="listener")
        job_id = factory.job(db, "test.add", {"a": 1})
        wait_for(lambda: job(db, job_id).state == "succeeded", timeout=10, what="pickup")
    finally:
        assert stop(worker) == 0


def test_a_job_that_waits_for_its_key_wakes_an_idle_worker_too(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """A keyed job is inserted waiting, for the promoter to let in: its insert must
    wake a worker as a queued job's does, not leave it to the next poll."""
    env = {**process_env, "WORKER_POLL_INTERVAL": "30"}  # only NOTIFY can wake it in time
    worker = start("worker.py", env, log=tmp_path / "w.log")
    try:
        wait_for(lambda: "listening" in (tmp_path / "w.log").read_text(), what="listener")
        with Session(db) as session:
            job_id = enqueue(session, "test.add", {"a": 1}, concurrency_key="user:1")
            session.commit()
        wait_for(lambda: job(db, job_id).state == "succeeded", timeout=10, what="pickup")
    finally:
        assert stop(worker) == 0


def cycles_waiting_on_a_lock(engine: Engine) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pillars-worker'"
                " AND wait_event_type = 'Lock' AND query LIKE '%WITH done AS%'"
            )
        )
        return int(found.scalar_one())


def test_a_job_enqueued_while_the_loop_waits_on_the_database_starts_at_once(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """The loop saves outcomes and claims in one statement; a NOTIFY that comes while
    that statement runs is answered by a claim of its own, not after it, when a
    thread is free for it. Here the statement waits on a row lock held by someone
    else for as long as the test likes, the slowest a cycle can be, and a job
    that ends meanwhile frees a thread."""
    env = {**process_env, "WORKER_POLL_INTERVAL": "30"}  # only NOTIFY can wake it in time
    marks = tmp_path / "runs"
    worker = start("worker.py", env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(lambda: "listening" in (tmp_path / "w.log").read_text(), what="listener")
        first = factory.job(db, "test.sleep", {"seconds": 1.5})
        second = factory.job(
            db, "test.record", {"path": str(marks), "marker": "second", "sleep": 3}
        )
        wait_for(lambda: job(db, second).state == "running", what="both jobs to start")
        with db.connect() as holder:
            holder.execute(text("SELECT 1 FROM jobs WHERE job_id = :id FOR UPDATE"), {"id": first})
            wait_for(lambda: cycles_waiting_on_a_lock(db), what="saving its outcome to wait")
            wait_for(lambda: runs(marks), what="the second job to end while the cycle waits")
            new = factory.job(db, "test.record", {"path": str(marks), "marker": "new"})
            wait_for(lambda: len(runs(marks)) == 2, what="the new job to run while the cycle waits")
            assert cycles_waiting_on_a_lock(db) == 1
        wait_for(lambda: states(db) == {"succeeded": 3}, what="every outcome saved")
    finally:
        assert stop(worker) == 0
    assert job(db, new).attempts == 1


def test_a_job_enqueued_while_the_loop_claims_the_last_free_thread_waits_for_one(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker never holds more jobs than its threads can take: a NOTIFY during a
    cycle that is already claiming into the only free thread gets no claim of its
    own, however urgent the job (it would wait in this worker, held from every
    other, until a thread frees up)."""
    env = {**process_env, "WORKER_POLL_INTERVAL": "30"}
    marks = tmp_path / "runs"
    worker = start("worker.py", env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(lambda: "listening" in (tmp_path / "w.log").read_text(), what="listener")
        first = factory.job(db, "test.sleep", {"seconds": 1.5})
        factory.job(db, "test.record", {"path": str(marks), "marker": "long", "sleep": 6})
        wait_for(lambda: states(db) == {"running": 2}, what="both jobs to start")
        with db.connect() as holder:
            holder.execute(text("SELECT 1 FROM jobs WHERE job_id = :id FOR UPDATE"), {"id": first})
            factory.job(db, "test.record", {"path": str(marks), "marker": "queued"})
            wait_for(lambda: cycles_waiting_on_a_lock(db), what="saving its outcome to wait")
            factory.job(db, "test.record", {"path": str(marks), "marker": "urgent"}, priority=10)
            time.sleep(1.0)  # time enough for a claim it must not make
            assert runs(marks) == []
        wait_for(lambda: states(db) == {"succeeded": 4}, what="every outcome saved")
    finally:
        assert stop(worker) == 0
    assert [mark.split()[0] for mark in runs(marks)] == ["queued", "urgent", "long"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_asked_for_while_starting_exits_zero_before_any_claim(
    db: Engine, process_env: dict[str, str], tmp_path: Path, signum: int
) -> None:
    """A rolling deploy may stop a successor that is still importing: no -15, no traceback."""
    job_id = factory.job(db, "test.add", {"a": 1})
    log = tmp_path / "w.log"
    worker = start("worker.py", process_env, log=log)
    try:
        wait_for(lambda: catches(worker, signal.SIGTERM), what="the worker to catch SIGTERM")
        worker.send_signal(signum)
        assert worker.wait(30) == 0, log.read_text()
    finally:
        stop(worker)
    assert " started: " not in log.read_text()
    assert "Traceback" not in log.read_text()
    assert "stopped while starting" in log.read_text()
    assert job(db, job_id).state == "queued"


def test_sigterm_lets_a_short_job_finish_then_exits_zero(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    job_id = factory.job(db, "test.record", {"path": str(marks), "marker": "a", "sleep": 1})
    worker = start("worker.py", process_env, log=tmp_path / "w.log")
    wait_for(lambda: job(db, job_id).state == "running", what="job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert job(db, job_id).state == "succeeded"
    assert len(runs(marks)) == 1


def test_sigterm_releases_a_job_longer_than_the_grace_period(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    job_id = factory.job(db, "test.record", {"path": str(marks), "marker": "a", "sleep": 4})
    env = {**process_env, "WORKER_SHUTDOWN_GRACE": "0.5"}
    first = start("worker.py", env, log=tmp_path / "first.log")
    wait_for(lambda: job(db, job_id).state == "running", what="job to start")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    released = job(db, job_id)
    assert (released.state, released.attempts) == ("queued", 0)
    second = start("worker.py", process_env, log=tmp_path / "second.log")
    try:
        wait_for(lambda: job(db, job_id).state == "succeeded", what="second worker to finish")
    finally:
        stop(second)


def test_second_signal_exits_at_once(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = factory.job(db, "test.sleep", {"seconds": 30})
    worker = start("worker.py", process_env, log=tmp_path / "w.log")
    wait_for(lambda: job(db, job_id).state == "running", what="job to start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(5) != 0


def test_kill_9_mid_job_and_another_worker_finishes_it(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    job_id = factory.job(db, "test.record", {"path": str(marks), "marker": "a", "sleep": 2})
    env = {**process_env, "WORKER_STALE_TIMEOUT": "3600"}  # only the life lock can tell
    victim = start("worker.py", env, log=tmp_path / "victim.log")
    wait_for(lambda: job(db, job_id).state == "running", what="job to start")
    victim.kill()
    victim.wait()
    survivor = start("worker.py", env, log=tmp_path / "survivor.log")
    try:
        wait_for(lambda: job(db, job_id).state == "succeeded", what="rescue and rerun")
    finally:
        stop(survivor)
    row = job(db, job_id)
    assert row.attempts == 2
    assert "died" in row.errors[0]["error"]
    assert len(runs(marks)) == 1  # the killed attempt never got to write


def test_job_that_kills_its_worker_every_time_ends_failed_and_others_succeed(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(db) as session:
        poison = enqueue(session, "test.crash", {})
        enqueue_many(session, [JobRequest("test.add", {"a": n}) for n in range(100)])
        session.commit()
    deadline = time.monotonic() + 60
    while job(db, poison).state != "failed" and time.monotonic() < deadline:
        worker = start("worker.py", process_env, "--concurrency", "2", log=tmp_path / "w.log")
        try:
            worker.wait(5)  # the supervisor: restart it whenever it dies
        except subprocess.TimeoutExpired:
            pass
        stop(worker)
    worker = start("worker.py", process_env, log=tmp_path / "w.log")
    try:
        wait_for(lambda: states(db).get("succeeded") == 100, what="normal jobs")
    finally:
        stop(worker)
    row = job(db, poison)
    assert (row.state, row.attempts) == ("failed", 2)
    assert row.last_error.startswith("attempt 2 of 2 lost: its worker")


def test_timeout_interrupts_the_job_and_the_worker_keeps_going(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(db) as session:
        spinning = enqueue(session, "test.spin", {})
        after = enqueue(session, "test.add", {"a": 1}, priority=-1)
        session.commit()
    worker = start("worker.py", process_env, "--concurrency", "1", log=tmp_path / "w.log")
    try:
        wait_for(lambda: job(db, after).state == "succeeded", what="the next job")
    finally:
        assert stop(worker) == 0
    row = job(db, spinning)
    assert row.state == "failed" and row.last_error.startswith("timed out after 0.5 s")


def test_presence_reconnects_after_its_connection_is_killed(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**process_env, "WORKER_POLL_INTERVAL": "30"}
    log = tmp_path / "w.log"
    worker = start("worker.py", env, log=log)

    def listeners() -> list[int]:
        with db.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE application_name = 'pillars-worker-presence'"
                    )
                ).scalars()
            )

    try:
        # Kill the connection only once it listens: killed while still
        # registering, it would come back listening only once.
        wait_for(lambda: "listening on" in log.read_text(), what="LISTEN")
        [first] = wait_for(listeners, what="listener connection")
        with db.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        wait_for(lambda: listeners() and listeners() != [first], what="a new listener")
        wait_for(lambda: log.read_text().count("listening on") >= 2, what="LISTEN again")
        job_id = factory.job(db, "test.add", {"a": 1})
        wait_for(lambda: job(db, job_id).state == "succeeded", timeout=10, what="pickup")
    finally:
        assert stop(worker) == 0
    assert "presence connection lost" in log.read_text()


def test_worker_and_job_modules_never_import_flask() -> None:
    code = (
        "import sys, worker, cron, app.jobs.worker, app.jobs.testing;"
        "sys.exit('flask' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_site_jobs_load_without_flask_or_the_pdf_library() -> None:
    code = (
        "import sys; from app.jobs import load_job_modules; load_job_modules();"
        "import app.accounts.jobs, app.reports.jobs, app.mail;"
        "sys.exit(bool({'flask', 'reportlab'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie its parent has not reaped counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_a_child_a_handler_forks_and_returns_from_exits_at_once(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """Carrying on, the child was a copy of the worker with one thread: an orphan that
    outlived the worker and ignored SIGTERM."""
    pid_file = tmp_path / "child"
    with Session(db) as session:
        forked = enqueue(session, "test.fork", {"path": str(pid_file)})
        after = enqueue(session, "test.add", {"a": 1}, priority=-1)
        session.commit()
    log = tmp_path / "w.log"
    worker = start("worker.py", process_env, log=log)
    try:
        wait_for(lambda: job(db, after).state == "succeeded", what="the job after it")
        child = int(pid_file.read_text())
        wait_for(lambda: gone(child), what="the forked child to exit")
        assert job(db, forked).state == "succeeded" and job(db, forked).result == "parent"
    finally:
        assert stop(worker) == 0
    assert "the handler returned in a process it forked" in log.read_text()


def test_a_job_cancelled_while_it_runs_is_retried_only_once_that_attempt_ends(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """Retried at once, the job ran a second attempt beside the first, still in its
    handler: twice at the same time, past any limit of its key."""
    record = tmp_path / "runs"
    with Session(db) as session:
        job_id = enqueue(session, "test.record", {"path": str(record), "marker": "run", "sleep": 3})
        session.commit()
    worker = start("worker.py", process_env, log=tmp_path / "w.log")
    try:
        wait_for(lambda: job(db, job_id).state == "running", what="the job to start")
        with Session(db) as session:
            assert operations.cancel(session, job_id)
            session.commit()
        with Session(db) as session:
            assert not operations.retry(session, job_id)  # its attempt is still running
        wait_for(lambda: len(runs(record)) == 1, what="the cancelled attempt to end")

        def retried() -> bool:
            with Session(db) as session:
                done = operations.retry(session, job_id)
                session.commit()
                return done

        wait_for(retried, what="the worker to let go of the attempt")
        wait_for(lambda: job(db, job_id).state == "succeeded", what="the second attempt")
    finally:
        assert stop(worker) == 0
    assert len(runs(record)) == 2 and job(db, job_id).attempts == 2


def test_a_cancelled_attempt_saved_apart_from_a_refused_cycle_is_let_go(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """When the database refuses a cycle, its outcomes are saved one by one; a cancelled
    job's attempt that ended on that path was never let go, so it could not be retried
    until the worker exited."""
    record = tmp_path / "runs"
    with db.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_claim() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.name = 'test.add' AND NEW.state = 'running' THEN"
                " RAISE EXCEPTION 'not now' USING ERRCODE = 'check_violation'; END IF;"
                " RETURN NEW; END $$;"
                "CREATE TRIGGER refuse_claim BEFORE UPDATE ON jobs"
                " FOR EACH ROW EXECUTE FUNCTION refuse_claim()"
            )
        )
    try:
        with Session(db) as session:
            job_id = enqueue(
                session, "test.record", {"path": str(record), "marker": "run", "sleep": 3}
            )
            session.commit()
        log = tmp_path / "w.log"
        worker = start("worker.py", process_env, log=log)
        try:
            wait_for(lambda: job(db, job_id).state == "running", what="the job to start")
            with Session(db) as session:
                assert operations.cancel(session, job_id)
                enqueue(session, "test.add", {"a": 1})  # every claim now fails
                session.commit()
            wait_for(lambda: len(runs(record)) == 1, what="the cancelled attempt to end")

            def retried() -> bool:
                with Session(db) as session:
                    done = operations.retry(session, job_id)
                    session.commit()
                    return done

            wait_for(retried, what="the worker to let go of the attempt")
            with db.begin() as conn:
                conn.execute(text("DROP TRIGGER refuse_claim ON jobs"))
            wait_for(lambda: job(db, job_id).state == "succeeded", what="the second attempt")
        finally:
            assert stop(worker) == 0
    finally:
        with db.begin() as conn:
            conn.execute(
                text("DROP TRIGGER IF EXISTS refuse_claim ON jobs; DROP FUNCTION refuse_claim()")
            )
    assert "cycle refused (CheckViolation: not now); saving outcomes apart" in log.read_text()
    assert "claim was lost before its outcome was saved" in log.read_text()
