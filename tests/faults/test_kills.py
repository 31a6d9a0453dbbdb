"""Scenarios 1 to 4: workers killed, frozen, poisoned and stopped mid-job."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, books, long_run, settled, worker_pid
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults


def test_kill_9_every_few_seconds_loses_nothing(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    total, every = (1000, 3.0) if long_run() else (400, 1.5)
    ledger = tmp_path / "ledger"
    with Session(fault_db.engine) as session:
        enqueue_many(
            session,
            [
                JobRequest(
                    "faults.work",
                    {
                        "n": n,
                        "seconds": random.uniform(0.1, 2.0 if long_run() else 0.6),
                        "ledger": str(ledger),
                    },
                )
                for n in range(total)
            ],
        )
        session.commit()
    fleet = Fleet(fault_env, 4, tmp_path, "--concurrency", "4")
    try:
        deadline = time.monotonic() + 600
        while not settled(fault_db.engine, total) and time.monotonic() < deadline:
            time.sleep(every)
            if not settled(fault_db.engine, total):
                fleet.kill_random()
    finally:
        fleet.close()
    result = books(fault_db.engine, total, ledger)
    recovery = worst_recovery(fault_db, fleet.kills)
    report.append(
        Row(
            "1 kill -9 workers",
            f"{total} jobs, 4x4 slots",
            f"{len(fleet.kills)} kill -9",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} (bound {len(fleet.kills) * 4})",
            f"{recovery:.1f} s",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert set(result.executions) == set(range(total))
    assert result.duplicates <= len(fleet.kills) * 4  # at most one slot-full per kill


def worst_recovery(db: FaultDatabase, kills: dict[int, float]) -> float:
    """Longest time from a kill to the re-claim of a job its victim held."""
    worst = 0.0
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT e ->> 'worker', extract(epoch FROM (e ->> 'at')::timestamptz)
            FROM jobs, jsonb_array_elements(errors) AS e
            WHERE e ->> 'error' LIKE 'lost:%'
        """)
        )
        for worker, rescued_at in rows:
            killed = kills.get(worker_pid(worker) or -1)
            if killed is not None:
                worst = max(worst, float(rescued_at) - killed)
    return worst


def test_heartbeating_long_job_is_never_rescued(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    ledger = tmp_path / "ledger"
    env = {**fault_env, "WORKER_STALE_TIMEOUT": "2"}
    with Session(fault_db.engine) as session:
        job_id = enqueue(session, "faults.work", {"n": 0, "seconds": 8, "ledger": str(ledger)})
        session.commit()
    workers = [start("worker.py", env, log=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_for(lambda: settled(fault_db.engine, 1), timeout=60, what="the long job")
    finally:
        for worker in workers:
            stop(worker)
    with fault_db.engine.connect() as conn:
        attempts, state = conn.execute(
            text("SELECT attempts, state FROM jobs WHERE job_id = :id"), {"id": job_id}
        ).one()
    report.append(
        Row(
            "2a long job, heartbeating",
            "1 job of 8 s, stale 2 s",
            "none",
            1,
            int(state == "succeeded"),
            int(state == "failed"),
            0,
            str(books(fault_db.engine, 1, ledger).duplicates),
            "-",
        )
    )
    assert (state, attempts) == ("succeeded", 1)


def test_frozen_worker_loses_its_claim_and_cannot_overwrite_the_new_owner(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    ledger = tmp_path / "ledger"
    env = {**fault_env, "WORKER_STALE_TIMEOUT": "2"}
    frozen = start("worker.py", env, "--concurrency", "1", log=tmp_path / "frozen.log")
    wait_for(lambda: "listening" in (tmp_path / "frozen.log").read_text(), what="first worker")
    with Session(fault_db.engine) as session:
        job_id = enqueue(session, "faults.work", {"n": 0, "seconds": 3, "ledger": str(ledger)})
        session.commit()

    def row() -> tuple[str, int, int | None]:
        with fault_db.engine.connect() as conn:
            state, attempts, result = conn.execute(
                text("SELECT state, attempts, result FROM jobs WHERE job_id = :id"), {"id": job_id}
            ).one()
        return state, attempts, result

    wait_for(lambda: row()[0] == "running", what="the first claim")
    frozen.send_signal(signal.SIGSTOP)
    frozen_at = time.time()
    survivor = start("worker.py", env, log=tmp_path / "survivor.log")
    try:
        wait_for(lambda: row()[0] == "succeeded", timeout=60, what="the new owner to finish")
        recovered = time.time() - frozen_at
        frozen.send_signal(signal.SIGCONT)
        wait_for(
            lambda: len(ledger.read_text().splitlines()) == 2,
            timeout=30,
            what="the frozen worker to finish its stale run",
        )
        time.sleep(1.5)  # give it time to try to save its outcome
        assert row() == ("succeeded", 2, survivor.pid)
    finally:
        stop(frozen)
        stop(survivor)
    assert "claim was lost" in (tmp_path / "frozen.log").read_text()
    report.append(
        Row(
            "2b frozen worker",
            "1 job, stale 2 s",
            "SIGSTOP > stale, SIGCONT",
            1,
            1,
            0,
            0,
            "1 (the frozen run; its result discarded)",
            f"{recovered:.1f} s",
        )
    )


def test_poison_job_ends_failed_and_others_succeed(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    ledger = tmp_path / "ledger"
    with Session(fault_db.engine) as session:
        poison = enqueue(session, "faults.poison", {})
        enqueue_many(
            session,
            [
                JobRequest("faults.work", {"n": n, "seconds": 0.05, "ledger": str(ledger)})
                for n in range(100)
            ],
        )
        session.commit()
    fleet = Fleet(fault_env, 2, tmp_path, "--concurrency", "4")
    try:
        wait_for(lambda: settled(fault_db.engine, 101), timeout=120, what="every job to settle")
    finally:
        fleet.close()
    with fault_db.engine.connect() as conn:
        state, error = conn.execute(
            text("SELECT state, last_error FROM jobs WHERE job_id = :id"), {"id": poison}
        ).one()
    result = books(fault_db.engine, 101, ledger)
    report.append(
        Row(
            "3 poison job",
            "1 poison + 100 jobs, 2x4 slots",
            f"{fleet.restarts} worker deaths",
            101,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            "-",
        )
    )
    assert state == "failed" and error.startswith("attempt 3 of 3 lost: its worker")
    assert result.states["succeeded"] == 100 and result.lost == 0


def test_sigterm_finishes_short_jobs_and_hands_long_ones_over(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    ledger = tmp_path / "ledger"
    env = {**fault_env, "WORKER_SHUTDOWN_GRACE": "2"}
    first = start("worker.py", env, "--concurrency", "4", log=tmp_path / "first.log")
    wait_for(lambda: "listening" in (tmp_path / "first.log").read_text(), what="worker")
    with Session(fault_db.engine) as session:
        for n, seconds in enumerate((0.5, 1.0, 6.0, 6.0)):
            enqueue(session, "faults.work", {"n": n, "seconds": seconds, "ledger": str(ledger)})
        session.commit()
    with fault_db.engine.connect() as conn:
        wait_for(
            lambda: (
                conn.execute(text("SELECT count(*) FROM jobs WHERE state = 'running'")).scalar_one()
                == 4
            ),
            what="all four running",
        )
    first.send_signal(signal.SIGTERM)
    code = first.wait(30)
    second = start("worker.py", env, log=tmp_path / "second.log")
    try:
        wait_for(lambda: settled(fault_db.engine, 4), timeout=60, what="the handed-over jobs")
    finally:
        stop(second)
    result = books(fault_db.engine, 4, ledger)
    report.append(
        Row(
            "4 SIGTERM mid-job",
            "2 short + 2 long jobs, grace 2 s",
            "SIGTERM",
            4,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            "-",
        )
    )
    assert code == 0
    assert result.states["succeeded"] == 4 and result.duplicates == 0
