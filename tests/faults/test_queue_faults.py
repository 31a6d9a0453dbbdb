"""Scenario 9: deploys, kills at the default heartbeat, a read-only database, a table lock, a
handler stuck in C code. A job may run twice only where its worker truly died mid-job."""

from __future__ import annotations

import random
import signal
import statistics
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, books, long_run, settled, worker_pid
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults


def enqueue_work(db: FaultDatabase, total: int, ledger: Path, low: float, high: float) -> None:
    with Session(db.engine) as session:
        enqueue_many(
            session,
            [
                JobRequest(
                    "faults.work",
                    {"n": n, "seconds": random.uniform(low, high), "ledger": str(ledger)},
                )
                for n in range(total)
            ],
        )
        session.commit()


def rescues(db: FaultDatabase) -> list[tuple[str, float]]:
    """(worker, when) of every attempt lost to a rescue."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e ->> 'worker', extract(epoch FROM (e ->> 'at')::timestamptz)"
                " FROM jobs, jsonb_array_elements(errors) AS e WHERE e ->> 'error' LIKE 'lost:%'"
            )
        )
        return [(worker, float(at)) for worker, at in rows]


def test_a_rolling_deploy_runs_no_job_twice(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total = 400 if long_run() else 150
    ledger = tmp_path / "ledger"
    enqueue_work(fault_db, total, ledger, 0.2, 1.5)
    env = {**fault_env, "WORKER_SHUTDOWN_GRACE": "10"}
    fleet = Fleet(env, 3, tmp_path, "--concurrency", "4")
    codes, deploys = [], 0
    try:
        deadline = time.monotonic() + 300
        while not settled(fault_db.engine, total) and time.monotonic() < deadline:
            time.sleep(1.0)
            # One process at a time, as a platform rolls a release out: stop
            # it, let it drain, and the supervisor starts its successor.
            index = deploys % 3
            log = tmp_path / f"worker-{index}.log"
            wait_for(  # the release it replaces is up and working
                lambda: log.read_text().count(" started: ") > deploys // 3,  # noqa: B023
                what="the previous release to start",
            )
            process = fleet.procs[index]
            process.send_signal(signal.SIGTERM)
            codes.append(process.wait(60))
            deploys += 1
    finally:
        codes += fleet.close()
    result = books(fault_db.engine, total, ledger)
    report.append(
        Row(
            "9a rolling deploy",
            f"{total} jobs, 3x4 slots, grace 10 s",
            f"{deploys} SIGTERM, each replaced",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            f"{len(rescues(fault_db))} rescued",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert result.duplicates == 0 and rescues(fault_db) == []
    assert set(codes) == {0}


def test_a_killed_worker_is_rescued_in_seconds_at_the_default_heartbeat(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total, kills = (400, 12) if long_run() else (120, 4)
    ledger = tmp_path / "ledger"
    env = {**fault_env, "WORKER_HEARTBEAT_INTERVAL": "5", "WORKER_STALE_TIMEOUT": "60"}
    with fault_db.engine.connect() as conn:  # peers are not suspected just after a restart
        up = conn.execute(text("SELECT now() - pg_postmaster_start_time()")).scalar_one()
    time.sleep(max(0.0, 10.5 - up.total_seconds()))
    enqueue_work(fault_db, total, ledger, 0.5, 1.5)
    fleet = Fleet(env, 3, tmp_path, "--concurrency", "4")
    try:
        for _ in range(kills):
            time.sleep(3.0)
            if not settled(fault_db.engine, total):
                fleet.kill_random()
        wait_for(lambda: settled(fault_db.engine, total), timeout=300, what="every job")
    finally:
        fleet.close()
    result = books(fault_db.engine, total, ledger)
    delays = [
        at - fleet.kills[pid]
        for worker, at in rescues(fault_db)
        if (pid := worker_pid(worker)) is not None and pid in fleet.kills
    ]
    median = statistics.median(delays) if delays else 0.0
    report.append(
        Row(
            "9b kill -9, default heartbeat",
            f"{total} jobs, 3x4 slots, heartbeat 5 s",
            f"{len(fleet.kills)} kill -9",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} (bound {len(fleet.kills) * 4})",
            f"rescue p50 {median:.1f} s, max {max(delays, default=0):.1f} s",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert result.duplicates <= len(fleet.kills) * 4
    # The heartbeat rule alone could not rescue before a 10 s grace.
    assert delays and max(delays) < 10


def test_workers_recover_after_the_database_was_read_only(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total = 600 if long_run() else 300
    ledger = tmp_path / "ledger"
    enqueue_work(fault_db, total, ledger, 0.02, 0.1)
    name = fault_db.engine.url.database
    fleet = Fleet(fault_env, 2, tmp_path, "--concurrency", "4")
    try:
        wait_for(lambda: books(fault_db.engine, total).states["succeeded"] > 20, what="progress")
        with fault_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            )
            time.sleep(3)
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        fresh = create_engine(fault_db.engine.url, poolclass=pool.NullPool)
        wait_for(lambda: settled(fresh, total), timeout=120, what="every job after the revert")
        survivors = fleet.restarts
    finally:
        fleet.close()
    result = books(fresh, total, ledger)
    report.append(
        Row(
            "9c database read-only",
            f"{total} jobs, 2x4 slots",
            "3 s read-only, every session cut",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            f"{survivors} worker restarts",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert result.duplicates == 0 and survivors == 0


def test_a_table_lock_longer_than_the_stale_timeout_rescues_nothing(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total = 40
    ledger = tmp_path / "ledger"
    env = {**fault_env, "WORKER_STALE_TIMEOUT": "3"}
    enqueue_work(fault_db, total, ledger, 1.0, 3.0)
    fleet = Fleet(env, 2, tmp_path, "--concurrency", "4")
    try:
        wait_for(lambda: books(fault_db.engine, total).states["running"] == 8, what="eight running")
        with fault_db.engine.begin() as conn:
            conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            time.sleep(6)
        wait_for(lambda: settled(fault_db.engine, total), timeout=120, what="every job")
    finally:
        fleet.close()
    result = books(fault_db.engine, total, ledger)
    report.append(
        Row(
            "9d table lock",
            f"{total} jobs, 2x4 slots, stale 3 s",
            "LOCK TABLE jobs for 6 s",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            f"{len(rescues(fault_db))} rescued",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert result.duplicates == 0 and rescues(fault_db) == []


def test_handlers_stuck_in_c_code_lose_their_slots_and_the_rest_runs(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    ledger = tmp_path / "ledger"
    with Session(fault_db.engine) as session:
        stuck = [enqueue(session, "faults.block", priority=1) for _ in range(2)]
        session.commit()
    enqueue_work(fault_db, 50, ledger, 0.01, 0.05)
    env = {**fault_env, "WORKER_TIMEOUT_GRACE": "1"}
    worker = start("worker.py", env, "--concurrency", "2", log=tmp_path / "worker.log")
    try:
        wait_for(lambda: settled(fault_db.engine, 52), timeout=120, what="every job")
        alive = worker.poll() is None
    finally:
        stop(worker)
    result = books(fault_db.engine, 52, ledger)
    with fault_db.engine.connect() as conn:
        errors = conn.execute(
            text("SELECT last_error FROM jobs WHERE job_id = ANY(:ids)"), {"ids": stuck}
        ).scalars()
        abandoned = sum("abandoned" in (error or "") for error in errors)
    report.append(
        Row(
            "9e handler stuck in C",
            "2 stuck + 50 jobs, 1x2 slots",
            "timeout 0.5 s + grace 1 s",
            52,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            f"{abandoned} threads abandoned",
        )
    )
    assert alive and abandoned == 2
    assert result.states["succeeded"] == 50 and result.states["failed"] == 2
