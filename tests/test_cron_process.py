"""Cron as real processes: several at once, stopped, killed and cut off from the database.

The schedules come from `tests/schedules.py`. The database clock cannot be
moved, so downtime is simulated by moving `cron_state.last_run_at` back.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.cron import control, load_schedules
from tests.processes import catches, start, stop, wait_for

pytestmark = pytest.mark.slow

EVERY_SECOND = "test.every_second"


@pytest.fixture
def cron_env(process_env: dict[str, str]) -> dict[str, str]:
    return {**process_env, "JOB_MODULES": "tests.jobs,tests.schedules"}


def scalar(engine: Engine, query: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(query), params).scalar()


def occurrences(engine: Engine, name: str) -> list[datetime]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT scheduled_for FROM jobs WHERE cron_name = :n ORDER BY 1"), {"n": name}
        )
        return list(rows.scalars())


def last_run_at(engine: Engine, name: str) -> datetime | None:
    value = scalar(engine, "SELECT last_run_at FROM cron_state WHERE name = :n", n=name)
    assert value is None or isinstance(value, datetime)
    return value


def db_now(engine: Engine) -> datetime:
    value = scalar(engine, "SELECT now()")
    assert isinstance(value, datetime)
    return value


def assert_every_second_once(engine: Engine) -> list[datetime]:
    """Every occurrence from the first job to last_run_at has exactly one job."""
    runs = occurrences(engine, EVERY_SECOND)
    assert runs and runs[-1] == last_run_at(engine, EVERY_SECOND)
    expected = [runs[0] + timedelta(seconds=n) for n in range(len(runs))]
    assert runs == expected, "an occurrence was lost or enqueued twice"
    return runs


def test_cron_registers_enqueues_and_stops_cleanly_on_sigterm(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    with db.begin() as conn:  # state left behind by a schedule since removed from code
        conn.execute(
            text("INSERT INTO cron_state VALUES ('test.removed', now() - interval '3 hours')")
        )
    cron = start("cron.py", cron_env, log=tmp_path / "cron.log")
    try:
        wait_for(lambda: len(occurrences(db, EVERY_SECOND)) >= 3, what="three occurrences")
        kind = scalar(db, "SELECT kind FROM workers")
        assert kind == "cron"
    finally:
        assert stop(cron) == 0
    assert scalar(db, "SELECT count(*) FROM workers") == 0
    assert occurrences(db, "test.removed") == []
    assert_every_second_once(db)


def test_cron_stopped_while_starting_exits_zero_and_enqueues_nothing(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "cron.log"
    cron = start("cron.py", cron_env, log=log)
    try:
        wait_for(lambda: catches(cron, signal.SIGTERM), what="cron to catch SIGTERM")
        cron.send_signal(signal.SIGTERM)
        assert cron.wait(30) == 0, log.read_text()
    finally:
        stop(cron)
    assert "stopped while starting" in log.read_text()
    assert scalar(db, "SELECT count(*) FROM jobs") == 0
    assert scalar(db, "SELECT count(*) FROM workers") == 0


def test_cron_down_for_three_hours_enqueues_per_missed_run_policy(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    # Hourly at the minute half an hour away: no occurrence falls during the test.
    minute = (db_now(db).minute + 30) % 60
    env = {**cron_env, "TEST_HOURLY_AT": f":{minute:02}"}
    names = [f"test.hourly.{policy}" for policy in ("latest", "all", "skip")]
    first = start("cron.py", env, log=tmp_path / "first.log")
    try:
        wait_for(lambda: all(last_run_at(db, n) for n in names), what="first sight")
    finally:
        assert stop(first) == 0
    latest = {n: last_run_at(db, n) for n in names}
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE cron_state SET last_run_at = last_run_at - interval '3 hours'"
                " WHERE name LIKE 'test.hourly.%'"
            )
        )
    second = start("cron.py", env, log=tmp_path / "second.log")
    try:
        wait_for(lambda: all(last_run_at(db, n) == latest[n] for n in names), what="catch-up")
    finally:
        assert stop(second) == 0
    counts = {n.rsplit(".", 1)[1]: len(occurrences(db, n)) for n in names}
    assert counts == {"latest": 1, "all": 3, "skip": 0}
    assert occurrences(db, "test.hourly.latest") == [latest["test.hourly.latest"]]
    kinds = scalar(
        db,
        "SELECT string_agg(kind || ' ' || occurrences, ', ' ORDER BY event_id)"
        " FROM cron_events WHERE name = 'test.hourly.skip'",
    )
    assert kinds == "skipped 3"


def test_three_cron_processes_enqueue_each_occurrence_exactly_once(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    crons = [start("cron.py", cron_env, log=tmp_path / f"cron{n}.log") for n in range(3)]
    try:
        wait_for(lambda: len(occurrences(db, EVERY_SECOND)) >= 8, what="eight occurrences")
        assert scalar(db, "SELECT count(*) FROM workers WHERE kind = 'cron'") == 3
    finally:
        assert [stop(cron) for cron in crons] == [0, 0, 0]
    assert len(assert_every_second_once(db)) >= 8


def test_kill_9_at_random_moments_never_loses_or_duplicates_an_occurrence(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random()
    crons: list[subprocess.Popen[bytes]] = []
    try:
        crons = [start("cron.py", cron_env, log=tmp_path / f"cron{n}.log") for n in range(3)]
        wait_for(lambda: occurrences(db, EVERY_SECOND), what="the first occurrence")
        for round_ in range(6):
            victim = crons.pop(rng.randrange(len(crons)))
            victim.kill()
            victim.wait()
            crons.append(start("cron.py", cron_env, log=tmp_path / f"again{round_}.log"))
            time.sleep(rng.uniform(0.05, 1.2))  # so kills land anywhere in a step
        killed_at = db_now(db)
        wait_for(
            lambda: (last_run_at(db, EVERY_SECOND) or killed_at) > killed_at + timedelta(seconds=2),
            what="cron to carry on after the kills",
        )
    finally:
        exits = [stop(cron) for cron in crons]
    assert exits == [0, 0, 0]
    assert_every_second_once(db)


def test_cron_survives_its_database_connections_being_killed(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "cron.log"
    cron = start("cron.py", cron_env, log=log)
    try:
        wait_for(lambda: len(occurrences(db, EVERY_SECOND)) >= 2, what="two occurrences")
        cut_at = db_now(db)
        killed = scalar(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'pillars-cron%'",
        )
        assert killed
        wait_for(
            lambda: (last_run_at(db, EVERY_SECOND) or cut_at) > cut_at + timedelta(seconds=3),
            what="cron to keep going",
        )
        wait_for(lambda: log.read_text().count("holding life lock") >= 2, what="life lock again")
    finally:
        assert stop(cron) == 0
    assert "presence connection lost" in log.read_text()
    assert_every_second_once(db)


def test_every_cron_process_honours_a_pause_and_resumes_without_a_backlog(
    db: Engine, cron_env: dict[str, str], tmp_path: Path
) -> None:
    every_second = next(s for s in load_schedules(["tests.schedules"]) if s.name == EVERY_SECOND)
    crons = [start("cron.py", cron_env, log=tmp_path / f"cron{n}.log") for n in range(2)]
    try:
        wait_for(lambda: len(occurrences(db, EVERY_SECOND)) >= 2, what="two occurrences")
        with Session(db) as session, session.begin():
            assert control.pause(session, every_second, "ops@example.com")
        paused = db_now(db)  # after the commit: no step that starts now may enqueue

        def skipped() -> int:
            total = scalar(
                db,
                "SELECT coalesce(sum(occurrences), 0) FROM cron_events"
                " WHERE name = :n AND reason = 'paused by ops@example.com'",
                n=EVERY_SECOND,
            )
            assert isinstance(total, int)
            return total

        wait_for(lambda: skipped() >= 3, what="three occurrences skipped while paused")
        assert max(occurrences(db, EVERY_SECOND)) <= paused
        with Session(db) as session, session.begin():
            assert control.resume(session, every_second)
        resumed = db_now(db)
        wait_for(
            lambda: max(occurrences(db, EVERY_SECOND)) > resumed + timedelta(seconds=2),
            what="the schedule to run again",
        )
    finally:
        assert [stop(cron) for cron in crons] == [0, 0]
    runs = occurrences(db, EVERY_SECOND)
    span = int((runs[-1] - runs[0]).total_seconds()) + 1
    assert len(runs) + skipped() == span, "every second was either enqueued once or skipped"


def test_a_schedule_the_database_refuses_holds_up_no_other_schedule(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """One schedule's step refused (here by a rule of the database's own, on its jobs)
    is logged and tried again later; the schedules after it keep their time."""
    (tmp_path / "refused_schedules.py").write_text(
        "import schedule\n"
        "from app.cron import Schedule, add\n"
        "add(Schedule('refused.first', schedule.every().second, 'test.noop', missed='all'))\n"
        "add(Schedule('refused.second', schedule.every().second, 'test.noop', missed='all'))\n"
    )
    env = {
        **process_env,
        "JOB_MODULES": "tests.jobs,refused_schedules",
        "PYTHONPATH": str(tmp_path),
    }
    with db.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_first() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.cron_name = 'refused.first' THEN"
                " RAISE EXCEPTION 'not this one' USING ERRCODE = 'check_violation'; END IF;"
                " RETURN NEW; END $$;"
                "CREATE TRIGGER refuse_first BEFORE INSERT ON jobs"
                " FOR EACH ROW EXECUTE FUNCTION refuse_first()"
            )
        )
    log = tmp_path / "cron.log"
    cron = start("cron.py", env, log=log)
    try:
        wait_for(lambda: len(occurrences(db, "refused.second")) >= 3, what="the other schedule")
        assert cron.poll() is None
    finally:
        assert stop(cron) == 0
        with db.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_first ON jobs; DROP FUNCTION refuse_first()"))
    assert occurrences(db, "refused.first") == []
    said = log.read_text()
    assert "schedule refused.first: step refused (CheckViolation: not this one)" in said
    assert "trying again in a minute" in said


def test_a_last_run_recorded_ahead_of_the_clock_is_reported_once(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """A clock set back, or an edited `cron_state` row, leaves a last run in the future:
    the occurrences until then count as run (enqueueing them again could run them
    twice), and a schedule that stays silent for a day must say why, once."""
    (tmp_path / "ahead_schedules.py").write_text(
        "import schedule\n"
        "from app.cron import Schedule, add\n"
        "add(Schedule('ahead.stuck', schedule.every().second, 'test.noop'))\n"
        "add(Schedule('ahead.other', schedule.every().second, 'test.noop'))\n"
    )
    env = {**process_env, "JOB_MODULES": "tests.jobs,ahead_schedules", "PYTHONPATH": str(tmp_path)}
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state (name, last_run_at)"
                " VALUES ('ahead.stuck', date_trunc('second', now()) + interval '1 day')"
            )
        )
    log = tmp_path / "cron.log"
    cron = start("cron.py", env, log=log)
    try:
        wait_for(lambda: len(occurrences(db, "ahead.other")) >= 3, what="the other schedule")
    finally:
        assert stop(cron) == 0
    assert occurrences(db, "ahead.stuck") == []
    warnings = [line for line in log.read_text().splitlines() if "ahead of the" in line]
    assert len(warnings) == 1, warnings
    assert "schedule ahead.stuck: last run recorded at" in warnings[0]
