"""Scenario 5: the database restarts or cuts connections in the middle of a run."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue_many
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, books, long_run, settled
from tests.faults.server import PrivateServer
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults


def finished(db: FaultDatabase) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed')")
            ).scalar_one()
        )


def progressed(db: FaultDatabase, target: int) -> Callable[[], bool]:
    return lambda: finished(db) >= target


def rescued(db: FaultDatabase) -> int:
    """Jobs taken from a worker at least once (a restart must not cause any)."""
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE errors::text LIKE '%lost:%'")
            ).scalar_one()
        )


def enqueue_work(db: FaultDatabase, total: int, ledger: Path) -> None:
    with Session(db.engine) as session:
        enqueue_many(
            session,
            [
                JobRequest(
                    "faults.work",
                    {"n": n, "seconds": random.uniform(0.05, 0.3), "ledger": str(ledger)},
                )
                for n in range(total)
            ],
        )
        session.commit()


def enqueue_one(db: FaultDatabase, seconds: float, ledger: Path) -> uuid.UUID:
    """One `faults.work` job of `seconds`, recorded in `ledger` when it runs; its id."""
    with Session(db.engine) as session:
        [job_id] = enqueue_many(
            session,
            [JobRequest("faults.work", {"n": 1, "seconds": seconds, "ledger": str(ledger)})],
        )
        session.commit()
    return job_id


@pytest.mark.parametrize(
    ("mode", "row"), [("fast", "5a PostgreSQL restart"), ("immediate", "5c PostgreSQL crash")]
)
def test_database_restart_mid_run_loses_nothing_and_kills_nobody(
    mode: str,
    row: str,
    private_server: PrivateServer,
    fault_db: FaultDatabase,
    fault_env: dict[str, str],
    tmp_path: Path,
    report: list[Row],
) -> None:
    total = 1000 if long_run() else 300
    restarts = 3 if long_run() else 1
    ledger = tmp_path / "ledger"
    enqueue_work(fault_db, total, ledger)
    cron_env = {**fault_env, "JOB_MODULES": "tests.faults.jobs,tests.jobs,tests.schedules"}
    crons = Fleet(cron_env, 2, tmp_path, script="cron.py")
    fleet = Fleet(cron_env, 2, tmp_path, "--concurrency", "4")
    first_pids = fleet.alive() + crons.alive()
    worst = 0.0
    try:
        for restart in range(restarts):
            target = total * (restart + 1) // (restarts + 2)
            wait_for(progressed(fault_db, target), timeout=120, what="progress")
            before = finished(fault_db)
            private_server.restart(mode)
            back = time.monotonic()
            wait_for(progressed(fault_db, before + 10), timeout=60, what="work to resume")
            worst = max(worst, time.monotonic() - back)
        wait_for(
            lambda: settled(fault_db.engine, total, "faults.work"), timeout=300, what="every job"
        )
        time.sleep(3)  # cron keeps going after the restart too
        survivors = fleet.alive() + crons.alive()
    finally:
        codes = fleet.close() + crons.close()
    result = books(fault_db.engine, total, ledger, "faults.work")
    false_rescues = rescued(fault_db)
    report.append(
        Row(
            row,
            f"{total} jobs, 2x4 slots, 2 cron (every second)",
            f"{restarts} pg_ctl restart -m {mode}",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} ({false_rescues} rescued)",
            f"{worst:.1f} s to resume",
        )
    )
    assert survivors == first_pids and fleet.restarts == crons.restarts == 0  # none died
    assert codes == [0, 0, 0, 0]
    assert result.lost == 0 and result.states["succeeded"] == total
    with fault_db.engine.connect() as conn:  # cron enqueued every second across the restart
        runs = list(
            conn.execute(
                text(
                    "SELECT scheduled_for FROM jobs"
                    " WHERE cron_name = 'test.every_second' ORDER BY 1"
                )
            ).scalars()
        )
    assert len(runs) == len(set(runs)) == int((runs[-1] - runs[0]).total_seconds()) + 1
    assert false_rescues == 0


def test_killed_connections_are_replaced(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total = 400 if long_run() else 200
    ledger = tmp_path / "ledger"
    fleet = Fleet(fault_env, 2, tmp_path, "--concurrency", "4")
    kills = 0
    try:
        wait_for(lambda: len(backends(fault_db, "pillars-worker-presence")) == 2, what="listeners")
        enqueue_work(fault_db, total, ledger)
        for application in (
            "pillars-worker-presence",
            "pillars",
            "pillars-worker-presence",
            "pillars",
        ):
            wait_for(lambda: finished(fault_db) > 0, what="progress")
            for pid in backends(fault_db, application):
                with fault_db.engine.connect() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                kills += 1
            time.sleep(0.5)
        wait_for(lambda: settled(fault_db.engine, total), timeout=120, what="every job")
        wait_for(
            lambda: len(backends(fault_db, "pillars-worker-presence")) == 2, what="listeners back"
        )
        survivors = fleet.restarts
    finally:
        fleet.close()
    result = books(fault_db.engine, total, ledger)
    report.append(
        Row(
            "5b pg_terminate_backend",
            f"{total} jobs, 2x4 slots",
            f"{kills} connections killed (LISTEN and work)",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} ({rescued(fault_db)} rescued)",
            "-",
        )
    )
    assert survivors == 0 and result.lost == 0 and result.states["succeeded"] == total
    assert rescued(fault_db) == 0


def backends(db: FaultDatabase, application: str) -> list[int]:
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
                    "AND datname = current_database()"
                ),
                {"app": application},
            ).scalars()
        )


def test_an_outcome_reached_while_no_connection_can_be_opened_is_saved_once_it_can(
    private_server: PrivateServer,
    fault_db: FaultDatabase,
    fault_env: dict[str, str],
    tmp_path: Path,
    report: list[Row],
) -> None:
    """A connection refused, or refused with "the database system is starting up",
    says the database is away, not that it refused the outcome: the worker keeps the
    outcome and saves it once the server is back. (Taken for a refusal, the outcome was dropped and
    the job, back in the queue as a stray of its own worker, ran a second time.)"""
    ledger = tmp_path / "ledger"
    job_id = enqueue_one(fault_db, 2.0, ledger)
    worker = start("worker.py", fault_env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(lambda: state(fault_db, job_id) == "running", what="the job to start")
        private_server.stop()  # a crash: the job ends while nothing can connect
        wait_for(lambda: ledger.exists(), what="the job to end with the server down")
        time.sleep(1.5)  # a few cycles and heartbeats fail meanwhile
        private_server.start()
        wait_for(lambda: state(fault_db, job_id) == "succeeded", what="the outcome saved")
    finally:
        assert stop(worker) == 0
    runs = ledger.read_text().splitlines()
    report.append(
        Row(
            "5d outcome while down",
            "1 job of 2 s, 1x2 slots",
            "server stopped mid-job, started 1.5 s after",
            1,
            1 if state(fault_db, job_id) == "succeeded" else 0,
            0,
            0,
            f"{len(runs) - 1} ({rescued(fault_db)} rescued)",
            "-",
        )
    )
    assert len(runs) == 1 and rescued(fault_db) == 0
    log = (tmp_path / "w.log").read_text()
    assert "outcome refused" not in log and "saving outcomes apart" not in log


def test_a_worker_stopping_while_the_database_is_away_saves_its_outcome_once_it_is_back(
    private_server: PrivateServer,
    fault_db: FaultDatabase,
    fault_env: dict[str, str],
    tmp_path: Path,
    report: list[Row],
) -> None:
    """Told to stop while the server is away, the worker lets its job finish and keeps
    trying to save the outcome for the rest of its grace period, then exits cleanly.
    (It used to exit as soon as its threads were done: the outcome was lost, and the
    job, rescued as a dead worker's, ran a second time.)"""
    ledger = tmp_path / "ledger"
    job_id = enqueue_one(fault_db, 2.0, ledger)
    env = {**fault_env, "WORKER_SHUTDOWN_GRACE": "20"}
    worker = start("worker.py", env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(lambda: state(fault_db, job_id) == "running", what="the job to start")
        private_server.stop()
        worker.terminate()  # a deploy's SIGTERM, while the server is away
        wait_for(lambda: ledger.exists(), what="the job to end with the server down")
        time.sleep(1.5)  # the worker has nothing left to run, only to save
        assert worker.poll() is None, "the worker left with its outcome unsaved"
        private_server.start()
        code = worker.wait(30)
    finally:
        stop(worker)
    wait_for(lambda: state(fault_db, job_id) is not None, what="the server to answer")
    runs = ledger.read_text().splitlines()
    report.append(
        Row(
            "5e stop while down",
            "1 job of 2 s, 1x2 slots",
            "server stopped, then SIGTERM; server back 1.5 s after the job ended",
            1,
            1 if state(fault_db, job_id) == "succeeded" else 0,
            0,
            0,
            f"{len(runs) - 1} ({rescued(fault_db)} rescued)",
            "-",
        )
    )
    assert code == 0
    assert state(fault_db, job_id) == "succeeded"
    assert len(runs) == 1 and rescued(fault_db) == 0


def test_a_worker_stopping_while_the_database_stays_away_leaves_when_its_grace_ends(
    private_server: PrivateServer,
    fault_db: FaultDatabase,
    fault_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Waiting to save an outcome is bounded by the grace period: a server that does
    not come back lets the worker go with exit code 1 and a line saying what will
    happen to the job (rescued, run again)."""
    ledger = tmp_path / "ledger"
    job_id = enqueue_one(fault_db, 0.5, ledger)
    env = {**fault_env, "WORKER_SHUTDOWN_GRACE": "3"}
    worker = start("worker.py", env, "--concurrency", "2", log=tmp_path / "w.log")
    try:
        wait_for(lambda: state(fault_db, job_id) == "running", what="the job to start")
        private_server.stop()
        worker.terminate()
        code = worker.wait(30)
    finally:
        stop(worker)
        private_server.start()
    assert ledger.read_text().splitlines() == [f"1 {worker.pid}"]
    assert code == 1
    log = (tmp_path / "w.log").read_text()
    assert "1 outcome(s) not saved within the grace period" in log


def state(db: FaultDatabase, job_id: object) -> str | None:
    try:
        with db.engine.connect() as conn:
            found = conn.execute(text("SELECT state FROM jobs WHERE job_id = :id"), {"id": job_id})
            return found.scalar_one_or_none()
    except Exception:  # the server is away for a moment
        return None
