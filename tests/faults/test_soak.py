"""Scenario 8: a steady stream of jobs with regular kills; latency and table size hold."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.jobs import enqueue
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, books, long_run
from tests.processes import wait_for

pytestmark = pytest.mark.faults

RATE = 50.0
#: Jobs enqueued this long after a kill count as inside the fault window.
WINDOW = 5.0


def table_health(db: FaultDatabase) -> tuple[int, int, int]:
    """(live rows, dead tuples, total bytes) of the jobs table."""
    with db.engine.connect() as conn:
        live, dead = conn.execute(
            text("SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'")
        ).one()
        size = conn.execute(text("SELECT pg_total_relation_size('jobs')")).scalar_one()
    return int(live), int(dead), int(size)


def test_soak_with_kills_keeps_latency_and_table_bounded(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    seconds, kill_every = (600.0, 30.0) if long_run() else (45.0, 15.0)
    env = {**fault_env, "JOB_RETENTION_DAYS": str(30 / 86_400)}  # keep 30 s of history
    fleet = Fleet(env, 2, tmp_path, "--concurrency", "8")
    samples: list[tuple[int, int, int]] = []
    total = 0
    try:
        wait_for(lambda: len(fleet.alive()) == 2, what="workers")
        time.sleep(1.0)
        started = time.monotonic()
        next_kill, next_prune, next_sample = kill_every, 10.0, 5.0
        with fault_db.engine.connect() as conn, Session(conn) as session:
            while (elapsed := time.monotonic() - started) < seconds:
                pause = started + total / RATE - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                enqueue(session, "faults.pickup", {"t": time.time()})
                session.commit()
                total += 1
                if elapsed > next_kill:
                    fleet.kill_random()
                    next_kill += kill_every
                if elapsed > next_prune:  # the prune schedule, at soak speed
                    enqueue(session, "pillars.prune_jobs", {})
                    session.commit()
                    total += 1
                    next_prune += 10.0
                if elapsed > next_sample:
                    samples.append(table_health(fault_db))
                    next_sample += 5.0
        wait_for(
            lambda: settled_pickups(fault_db) >= total - pruned(fault_db, total),
            timeout=120,
            what="the last jobs",
        )
    finally:
        fleet.close()
    kills = sorted(fleet.kills.values())
    quiet = pickups_outside(fault_db, kills)
    p50, p99 = (quiet[len(quiet) // 2], quiet[int(len(quiet) * 0.99)]) if quiet else (0, 0)
    result = books(fault_db.engine, total)
    max_dead = max(s[1] for s in samples)
    max_size = max(s[2] for s in samples)
    report.append(
        Row(
            "8 soak",
            f"{seconds:.0f} s at {RATE:.0f} jobs/s",
            f"{len(kills)} kill -9",
            total,
            result.states["succeeded"] + pruned(fault_db, total),
            result.states["failed"],
            unfinished(fault_db),
            "-",
            f"pickup p50 {p50 * 1000:.0f} / p99 {p99 * 1000:.0f} ms outside faults; "
            f"max {max_dead} dead tuples, {max_size // 1024} KiB",
        )
    )
    assert result.states["failed"] == 0 and not unfinished(fault_db)
    # Pruning and autovacuum keep the table from growing with the run's length.
    assert max_size < 16 * 1024 * 1024
    assert max_dead < RATE * 2 * 120  # at most ~2 minutes of updates awaiting vacuum


def settled_pickups(db: FaultDatabase) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE state = 'succeeded'")).scalar_one()
        )


def unfinished(db: FaultDatabase) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            ).scalar_one()
        )


def pruned(db: FaultDatabase, total: int) -> int:
    """Jobs already deleted by the prune job: they had succeeded."""
    with db.engine.connect() as conn:
        present = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    return total - int(present)


def pickups_outside(db: FaultDatabase, kills: list[float]) -> list[float]:
    """Pickup delays of jobs enqueued away from any kill, sorted."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT CAST(payload ->> 't' AS double precision),"
                " CAST(result AS double precision) FROM jobs"
                " WHERE name = 'faults.pickup' AND state = 'succeeded'"
            )
        ).all()
    return sorted(delay for t, delay in rows if not any(k - 1.0 <= t <= k + WINDOW for k in kills))
