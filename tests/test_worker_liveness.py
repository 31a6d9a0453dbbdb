"""Liveness of real worker processes: a job runs twice only when its worker truly died.

Deploys, dead peers, a database that was read-only or held a table lock, and
handlers stuck in C code: each must be handled without running a job a
second time needlessly and without stranding a slot.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import signal
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import JobRequest, enqueue, enqueue_many, sql
from app.jobs.worker import EXIT_TIRED, Worker, settle_heap
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.slow


def job(engine: Engine, job_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).one()


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def record(engine: Engine, path: Path, sleep: float, **options: Any) -> uuid.UUID:
    with Session(engine) as session:
        job_id = enqueue(
            session, "test.record", {"path": str(path), "marker": "m", "sleep": sleep}, **options
        )
        session.commit()
    return job_id


def life_lock_holders(engine: Engine) -> list[int]:
    """Backends holding a process's life lock (not the watcher's key 0)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :ns AND objid <> 0"
                ),
                {"ns": sql.LOCK_NAMESPACE},
            ).scalars()
        )


def test_a_draining_worker_keeps_its_jobs_until_it_has_saved_them(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    env = {**process_env, "WORKER_SHUTDOWN_GRACE": "20"}
    draining = start("worker.py", env, log=tmp_path / "draining.log")
    job_id = record(db, marks, sleep=3)
    wait_for(lambda: job(db, job_id).state == "running", what="the job to start")
    peer = start("worker.py", env, log=tmp_path / "peer.log")
    try:
        wait_for(lambda: len(life_lock_holders(db)) == 2, what="both workers alive")
        draining.send_signal(signal.SIGTERM)
        assert draining.wait(30) == 0
        wait_for(lambda: job(db, job_id).state == "succeeded", what="the job to finish")
    finally:
        stop(draining)
        assert stop(peer) == 0
    assert len(runs(marks)) == 1
    assert job(db, job_id).attempts == 1
    assert "rescued" not in (tmp_path / "peer.log").read_text()


def test_a_killed_workers_jobs_run_again_without_waiting_for_its_heartbeat(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    # Heartbeats so rare that only the life lock can tell, within the deadline.
    env = {**process_env, "WORKER_HEARTBEAT_INTERVAL": "30", "WORKER_STALE_TIMEOUT": "3600"}
    with db.connect() as conn:  # a server that just started protects reconnecting peers
        up = conn.execute(text("SELECT now() - pg_postmaster_start_time()")).scalar_one()
    time.sleep(max(0.0, 10.5 - up.total_seconds()))
    victim = start("worker.py", env, log=tmp_path / "victim.log")
    # Long enough to outlast the survivor's start on a loaded machine: the kill
    # must land mid-run (a 1 s job had sometimes finished and been saved).
    job_id = record(db, marks, sleep=5)
    wait_for(lambda: job(db, job_id).state == "running", what="the job to start")
    survivor = start("worker.py", env, log=tmp_path / "survivor.log")
    try:
        wait_for(lambda: len(life_lock_holders(db)) == 2, what="both workers alive")
        assert not runs(marks), "the job ended before its worker could be killed"
        victim.kill()
        victim.wait()
        # The old rule waited for a heartbeat 60 s late; the watcher needs seconds.
        try:
            wait_for(lambda: job(db, job_id).attempts == 2, timeout=40, what="the rescue")
        except AssertionError as missed:
            logs = (tmp_path / "survivor.log").read_text()[-3000:]
            raise AssertionError(f"{missed}; the survivor said:\n{logs}") from None
        wait_for(lambda: job(db, job_id).state == "succeeded", what="the second run")
    finally:
        assert stop(survivor) == 0
    row = job(db, job_id)
    assert "died" in row.errors[0]["error"]
    assert len(runs(marks)) == 1  # the killed run never got to write


def test_workers_recover_once_a_read_only_database_is_writable_again(
    db: Engine, database_url: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    name = db.url.database
    worker = start("worker.py", process_env, "--concurrency", "4", log=tmp_path / "w.log")
    try:
        wait_for(lambda: life_lock_holders(db), what="the worker")
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # What a failover looks like to a process: its sessions drop, and
            # the ones it opens meanwhile land on a server that is read-only.
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                    " AND application_name <> 'pillars-tests'"
                ),
                {"db": name},
            )
            time.sleep(3)
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        fresh = create_engine(db.url, poolclass=pool.NullPool)
        with Session(fresh) as session:
            ids = enqueue_many(session, [JobRequest("test.add", {"a": n}) for n in range(20)])
            session.commit()
        wait_for(
            lambda: all(job(fresh, j).state == "succeeded" for j in ids),
            timeout=30,
            what="the worker to work again",
        )
        assert worker.poll() is None
    finally:
        assert stop(worker) == 0
    log = (tmp_path / "w.log").read_text()
    assert "ReadOnlySqlTransaction" in log


def test_a_table_lock_that_holds_up_heartbeats_is_not_a_frozen_worker(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marks = tmp_path / "runs"
    first = start("worker.py", process_env, log=tmp_path / "first.log")
    job_id = record(db, marks, sleep=6)
    wait_for(lambda: job(db, job_id).state == "running", what="the job to start")
    second = start("worker.py", process_env, log=tmp_path / "second.log")
    try:
        wait_for(lambda: len(life_lock_holders(db)) == 2, what="both workers alive")
        with db.begin() as conn:  # longer than the stale timeout (3 s here)
            conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            time.sleep(5)
        wait_for(lambda: job(db, job_id).state == "succeeded", what="the job to finish")
    finally:
        assert stop(first) == 0
        assert stop(second) == 0
    assert len(runs(marks)) == 1
    assert job(db, job_id).attempts == 1


def test_a_handler_stuck_in_c_code_loses_its_slot_after_timeout_and_grace(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**process_env, "WORKER_TIMEOUT_GRACE": "1"}
    with Session(db) as session:
        stuck = enqueue(session, "test.block")
        after = enqueue(session, "test.add", {"a": 1}, priority=-1)
        session.commit()
    worker = start("worker.py", env, "--concurrency", "1", log=tmp_path / "w.log")
    try:
        wait_for(lambda: job(db, after).state == "succeeded", what="the slot to come back")
        assert worker.poll() is None
    finally:
        assert stop(worker) == 0
    row = job(db, stuck)
    assert row.state == "failed"
    assert "timed out after 0.5 s" in row.last_error and "abandoned" in row.last_error


def test_a_worker_with_too_many_stuck_threads_exits_to_be_restarted(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**process_env, "WORKER_TIMEOUT_GRACE": "0.5", "WORKER_MAX_ABANDONED": "2"}
    with Session(db) as session:
        for _ in range(2):
            enqueue(session, "test.block")
        session.commit()
    log = tmp_path / "w.log"
    worker = start("worker.py", env, "--concurrency", "4", log=log)
    try:
        assert worker.wait(60) == EXIT_TIRED
    finally:
        stop(worker)
    assert "stuck past their timeout; stopping so a fresh process can take over" in (
        log.read_text()
    )
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM workers")).scalar_one() == 0


def test_reconnecting_the_presence_starts_its_backoff_over_each_time(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "w.log"
    worker = start("worker.py", process_env, log=log)
    try:
        for kill in range(4):
            wait_for(
                lambda: log.read_text().count("registered, holding") > kill,  # noqa: B023
                what="the presence to be up",
            )
            [pid] = life_lock_holders(db)
            with db.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_for(lambda: log.read_text().count("registered, holding") > 4, what="back again")
    finally:
        assert stop(worker) == 0
    delays = re.findall(r"reconnecting in ([0-9.]+)s", log.read_text())
    assert delays == ["0.2"] * 4


def test_what_startup_built_is_left_out_of_later_collections() -> None:
    """A full collection stops every thread while it walks the heap: once the worker
    has started, it walks only what came since (see `settle_heap`)."""
    built_at_startup = [{"n": n} for n in range(10_000)]
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(built_at_startup)
        oldest = gc.get_objects(generation=2)
        assert not any(thing is built_at_startup for thing in oldest)
    finally:
        gc.unfreeze()


def test_the_worker_commits_durably_unless_told_otherwise(settings: Settings, db: Engine) -> None:
    fast = dataclasses.replace(settings, worker_synchronous_commit=False)
    for setting, expected in ((settings, "on"), (fast, "off")):
        worker = Worker(db, setting)
        conn = worker._connection()
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == expected
        worker._drop_connection()


def test_the_loops_session_settings_never_reach_the_pool(settings: Settings, db: Engine) -> None:
    """Generic plans and asynchronous commit are for the loop's statement only."""
    worker = Worker(db, dataclasses.replace(settings, worker_synchronous_commit=False))
    conn = worker._connection()
    assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_generic_plan"
    worker._drop_connection()
    with ExitStack() as stack:  # every connection the pool can hand out, at once
        pooled = [stack.enter_context(db.connect()) for _ in range(db.pool.size())]  # type: ignore[attr-defined]
        for other in pooled:
            assert other.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "auto"
            assert other.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"


def test_a_stopping_worker_hands_back_what_it_claimed_ahead(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(db) as session:
        enqueue_many(session, [JobRequest("test.noop") for _ in range(20_000)])
        session.commit()
    worker = start("worker.py", process_env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(
            lambda: states_now(db).get("succeeded", 0) > 1_000, timeout=60, what="a fast drain"
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        stop(worker)
    found = states_now(db)
    assert "running" not in found  # nothing held back by a worker that is gone
    with db.connect() as conn:  # the unstarted ones got their attempt back
        assert (
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts > 0")
            ).scalar_one()
            == 0
        )


def states_now(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM jobs GROUP BY state"))
        return {state: count for state, count in rows}
