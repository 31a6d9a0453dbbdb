"""Scenario 13: kill -9 storms while keys and a limited queue are busy: limits hold, nothing
is lost or stuck."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue_many, flow
from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, books, long_run, settled
from tests.processes import wait_for

pytestmark = pytest.mark.faults


def most_running(db: FaultDatabase, where: str) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM jobs WHERE state = 'running' AND {where}")
            ).scalar_one()
        )


def test_limits_hold_and_nothing_sticks_through_kill_9_storms(
    fault_db: FaultDatabase, fault_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    keys, per_key, limited = (20, 15, 200) if long_run() else (10, 10, 80)
    total = keys * per_key + limited
    ledger = tmp_path / "ledger"
    with Session(fault_db.engine) as session:
        flow.set_limit(session, "metered", concurrency=3, set_by="faults")
        enqueue_many(
            session,
            [
                JobRequest(
                    "faults.work",
                    {"n": n, "seconds": random.uniform(0.05, 0.4), "ledger": str(ledger)},
                    concurrency_key=f"user:{n % keys}",
                    concurrency_limit=1,
                )
                for n in range(keys * per_key)
            ]
            + [
                JobRequest(
                    "faults.work",
                    {"n": n, "seconds": random.uniform(0.05, 0.4), "ledger": str(ledger)},
                    queue="metered",
                )
                for n in range(keys * per_key, total)
            ],
        )
        session.commit()
    fleet = Fleet(fault_env, 4, tmp_path, "--concurrency", "8")
    worst_key = worst_queue = 0
    try:
        deadline = time.monotonic() + (600 if long_run() else 240)
        next_kill = time.monotonic() + 2
        while not settled(fault_db.engine, total) and time.monotonic() < deadline:
            with fault_db.engine.connect() as conn:
                worst_key = max(
                    worst_key,
                    int(
                        conn.execute(
                            text(
                                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM jobs"
                                " WHERE state = 'running' AND flow_key IS NOT NULL"
                                " GROUP BY flow_key) AS per_key"
                            )
                        ).scalar_one()
                    ),
                )
            worst_queue = max(worst_queue, most_running(fault_db, "queue = 'metered'"))
            if time.monotonic() >= next_kill:
                fleet.kill_random()
                next_kill = time.monotonic() + 2.5
            time.sleep(0.05)
        wait_for(lambda: settled(fault_db.engine, total), timeout=120, what="every job")
    finally:
        fleet.close()
    result = books(fault_db.engine, total, ledger)
    report.append(
        Row(
            "13 limits under kill -9",
            f"{keys} keys x {per_key} (limit 1) + {limited} in a queue of 3, 4x8 slots",
            f"{len(fleet.kills)} kill -9",
            total,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} (bound {len(fleet.kills) * 8})",
            f"most running: {worst_key} per key, {worst_queue} in the queue",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == total
    assert worst_key <= 1 and worst_queue <= 3
    assert result.duplicates <= len(fleet.kills) * 8
