"""Scenario 6: cron down for hours, and three cron processes racing while one is killed."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, long_run
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults

EVERY_SECOND = "test.every_second"


@pytest.fixture
def cron_env(fault_env: dict[str, str]) -> dict[str, str]:
    # No hourly occurrence may fall while the test runs: put them half an hour away.
    minute = (datetime.now().minute + 30) % 60
    return {
        **fault_env,
        "JOB_MODULES": "tests.faults.jobs,tests.jobs,tests.schedules",
        "TEST_HOURLY_AT": f":{minute:02d}",
    }


def occurrences(db: FaultDatabase, name: str) -> list[datetime]:
    with db.engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT scheduled_for FROM jobs WHERE cron_name = :n ORDER BY 1"), {"n": name}
            ).scalars()
        )


def gaps_and_duplicates(runs: list[datetime]) -> tuple[int, int]:
    """(missing seconds, repeated seconds) between the first and last occurrence."""
    if not runs:
        return 0, 0
    span = int((runs[-1] - runs[0]).total_seconds()) + 1
    return span - len(set(runs)), len(runs) - len(set(runs))


def test_cron_down_three_hours_catches_up_per_policy(
    fault_db: FaultDatabase, cron_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    with fault_db.engine.begin() as conn:
        for policy in ("latest", "all", "skip"):
            conn.execute(
                text(
                    "INSERT INTO cron_state (name, last_run_at) VALUES "
                    "(:name, now() - interval '3 hours')"
                ),
                {"name": f"test.hourly.{policy}"},
            )
        before = {
            r[0]: r[1] for r in conn.execute(text("SELECT name, last_run_at FROM cron_state"))
        }
    cron = start("cron.py", cron_env, log=tmp_path / "cron.log")
    try:

        def advanced() -> bool:
            with fault_db.engine.connect() as conn:
                states = conn.execute(text("SELECT name, last_run_at FROM cron_state"))
                rows: dict[str, datetime] = {name: when for name, when in states}
            return all(rows[name] > when for name, when in before.items())

        wait_for(advanced, timeout=60, what="every hourly schedule to catch up")
    finally:
        assert stop(cron) == 0
    counts = {p: len(occurrences(fault_db, f"test.hourly.{p}")) for p in ("latest", "all", "skip")}
    report.append(
        Row(
            "6a cron down 3 h",
            "3 hourly schedules",
            "3 h of downtime (simulated)",
            sum(counts.values()),
            sum(counts.values()),
            0,
            0,
            "0",
            f"latest {counts['latest']}, all {counts['all']}, skip {counts['skip']}",
        )
    )
    assert counts == {"latest": 1, "all": 3, "skip": 0}


def test_three_racing_cron_processes_enqueue_each_occurrence_once(
    fault_db: FaultDatabase, cron_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    seconds, kill_every = (600.0, 20.0) if long_run() else (40.0, 8.0)
    fleet = Fleet(cron_env, 3, tmp_path, script="cron.py")
    try:
        wait_for(lambda: occurrences(fault_db, EVERY_SECOND), timeout=60, what="a first run")
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(kill_every)
            fleet.kill_random()
    finally:
        fleet.close()
    runs = occurrences(fault_db, EVERY_SECOND)
    with fault_db.engine.connect() as conn:
        last = conn.execute(
            text("SELECT last_run_at FROM cron_state WHERE name = :n"), {"n": EVERY_SECOND}
        ).scalar_one()
    missing, repeated = gaps_and_duplicates(runs)
    report.append(
        Row(
            "6b 3 cron processes racing",
            f"every-second schedule, {seconds:.0f} s",
            f"{len(fleet.kills)} kill -9 of cron",
            len(runs),
            len(runs),
            0,
            missing,
            str(repeated),
            "-",
        )
    )
    assert runs[-1] == last and missing == 0 and repeated == 0
    assert len(runs) >= seconds * 0.9  # it really ran all along
