"""Scenario 6: cron down for hours, three cron processes racing while one is killed,
a cron frozen mid-step, and a redefinition rolled out under load."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.faults.conftest import FaultDatabase, Row
from tests.faults.harness import Fleet, long_run
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.faults

EVERY_SECOND = "test.every_second"
GATED = "faults.gated"
REDEFINED = "faults.redefined"


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


def state_of(db: FaultDatabase, name: str) -> datetime | None:
    with db.engine.connect() as conn:
        found: datetime | None = conn.execute(
            text("SELECT last_run_at FROM cron_state WHERE name = :n"), {"n": name}
        ).scalar_one_or_none()
        return found


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


@pytest.fixture
def fault_cron_env(cron_env: dict[str, str]) -> dict[str, str]:
    """Cron with the fault suite's own schedules as well (tests/faults/cron_schedules.py)."""
    return {**cron_env, "JOB_MODULES": cron_env["JOB_MODULES"] + ",tests.faults.cron_schedules"}


def db_now(db: FaultDatabase) -> datetime:
    with db.engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT now()")).scalar_one()
        return now


def test_a_cron_frozen_mid_step_loses_its_schedule_to_a_peer_and_repeats_nothing(
    fault_db: FaultDatabase, fault_cron_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    frozen = start(
        "cron.py", {**fault_cron_env, "TEST_CRON_GATE": str(gate)}, log=tmp_path / "a.log"
    )
    peer = None
    try:
        wait_for(lambda: occurrences(fault_db, GATED), timeout=60, what="a first occurrence")
        (gate / "arm").touch()
        wait_for((gate / "held").exists, timeout=60, what="the step to be held")
        frozen.send_signal(signal.SIGSTOP)  # holds the schedule's row lock, frozen
        frozen_at = db_now(fault_db)
        (gate / "release").touch()  # seen only once it runs again
        peer = start("cron.py", fault_cron_env, log=tmp_path / "b.log")

        def taken_over() -> bool:
            runs = occurrences(fault_db, GATED)
            return bool(runs) and runs[-1] > frozen_at + timedelta(seconds=1)

        wait_for(taken_over, timeout=60, what="a peer to take the schedule over")
        recovery = (db_now(fault_db) - frozen_at).total_seconds()
        frozen.send_signal(signal.SIGCONT)
        woke_at = db_now(fault_db)
        wait_for(
            lambda: occurrences(fault_db, GATED)[-1] > woke_at + timedelta(seconds=3),
            timeout=60,
            what="both processes to carry on",
        )
    finally:
        frozen.send_signal(signal.SIGCONT)
        exits = [stop(frozen)] + ([stop(peer)] if peer else [])
    runs = occurrences(fault_db, GATED)
    missing, repeated = gaps_and_duplicates(runs)
    report.append(
        Row(
            "6c cron frozen mid-step",
            "every-second schedule, 2 cron processes",
            "SIGSTOP holding the row lock, then SIGCONT",
            len(runs),
            len(runs),
            0,
            missing,
            str(repeated),
            f"peer took over after {recovery:.1f} s",
        )
    )
    assert exits == [0, 0]
    assert missing == 0 and repeated == 0
    assert "step ended by its time bound" in (tmp_path / "a.log").read_text() or (
        "database unavailable" in (tmp_path / "a.log").read_text()
    )


def test_a_redefinition_rolled_out_under_load_enqueues_no_burst(
    fault_db: FaultDatabase, fault_cron_env: dict[str, str], tmp_path: Path, report: list[Row]
) -> None:
    """Hourly (last run half an hour ago) becomes every second, `all`: not 24 jobs at once."""
    logs = {name: tmp_path / name for name in ("old", "new", "workers")}
    for folder in logs.values():
        folder.mkdir()
    old = Fleet({**fault_cron_env, "TEST_REDEFINED": "hourly"}, 3, logs["old"], script="cron.py")
    workers = Fleet(fault_cron_env, 2, logs["workers"], "--concurrency", "4")
    new: Fleet | None = None
    try:
        wait_for(lambda: state_of(fault_db, REDEFINED), timeout=60, what="the hourly definition")
        switched_at = db_now(fault_db)
        second = {**fault_cron_env, "TEST_REDEFINED": "second"}
        new = Fleet(second, 3, logs["new"], script="cron.py")
        time.sleep(3)  # old and new side by side, as in a rolling deploy
        old.close()
        rolled_at = db_now(fault_db)
        for _ in range(3):
            time.sleep(2)
            new.kill_random()

        def running_on() -> bool:
            runs = occurrences(fault_db, REDEFINED)
            return bool(runs) and runs[-1] > rolled_at + timedelta(seconds=8)

        wait_for(running_on, timeout=60, what="the new definition to run")
    finally:
        exits = (new.close() if new else []) + workers.close()
        old.close()
    runs = occurrences(fault_db, REDEFINED)
    with fault_db.engine.connect() as conn:
        # Jobs of one step share created_at (the transaction's start).
        burst = conn.execute(
            text(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM jobs"
                " WHERE cron_name = :n GROUP BY created_at) AS steps"
            ),
            {"n": REDEFINED},
        ).scalar_one()
        redefinitions = conn.execute(
            text("SELECT count(*) FROM cron_events WHERE name = :n AND kind = 'redefined'"),
            {"n": REDEFINED},
        ).scalar_one()
    # Once the old processes are gone, every second runs exactly once.
    steady = [r for r in runs if r > rolled_at + timedelta(seconds=1)]
    missing, repeated = gaps_and_duplicates(steady)
    report.append(
        Row(
            "6d redefinition rolled out",
            "hourly -> every second, 3+3 cron, 2 workers",
            f"rolling switch, {len(new.kills) if new else 0} kill -9 after",
            len(runs),
            len(runs),
            0,
            missing,
            str(repeated),
            f"largest step {burst} job(s), {redefinitions} redefinition(s)",
        )
    )
    assert exits == [0] * len(exits)
    assert burst == 1, "one step enqueued several occurrences at once"
    assert runs and min(runs) >= switched_at - timedelta(seconds=1)
    assert redefinitions >= 1
    assert missing == 0 and repeated == 0
