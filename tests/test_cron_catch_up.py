"""One schedule's step on real PostgreSQL, with the clock in the test's hands.

`catch_up` takes `now` as an argument (cron passes the database's `now()`),
so gaps of hours or days play out here exactly and at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schedule
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.cron import Schedule
from app.cron.firing import Step, catch_up
from app.jobs.testing import drain


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-26 {clock}").replace(tzinfo=UTC)


def hourly(missed: Any = "latest", **options: Any) -> Schedule:
    return Schedule(
        f"t.hourly.{missed}", schedule.every().hour, "test.noop", missed=missed, **options
    )


def step(engine: Engine, schedule: Schedule, now: datetime) -> Step:
    with Session(engine) as session, session.begin():
        return catch_up(session, schedule, now)


def hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def enqueued(engine: Engine, name: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT scheduled_for FROM jobs WHERE cron_name = :n ORDER BY 1"), {"n": name}
        )
        return [hhmm(moment) for moment in rows.scalars()]


def events(engine: Engine, name: str) -> list[tuple[str, int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, occurrences, first_occurrence, last_occurrence FROM cron_events"
                " WHERE name = :n ORDER BY event_id"
            ),
            {"n": name},
        )
        return [
            (
                kind,
                n,
                first.astimezone(UTC).strftime("%H:%M"),
                last.astimezone(UTC).strftime("%H:%M"),
            )
            for kind, n, first, last in rows
        ]


def last_run_at(engine: Engine, name: str) -> datetime:
    with engine.connect() as conn:
        value: datetime = conn.execute(
            text("SELECT last_run_at FROM cron_state WHERE name = :n"), {"n": name}
        ).scalar_one()
        return value


def test_a_schedule_never_run_before_starts_from_now_without_a_flood(db: Engine) -> None:
    every_hour = hourly()
    assert step(db, every_hour, at("09:30")).enqueued == []
    assert last_run_at(db, every_hour.name) == at("09:00")
    step(db, every_hour, at("10:00:02"))
    assert enqueued(db, every_hour.name) == ["10:00"]
    assert events(db, every_hour.name) == []  # on time: nothing to report


def test_latest_enqueues_the_most_recent_missed_occurrence_once(db: Engine) -> None:
    every_hour = hourly("latest")
    step(db, every_hour, at("09:30"))
    step(db, every_hour, at("12:30"))  # down for three hours
    assert enqueued(db, every_hour.name) == ["12:00"]
    assert events(db, every_hour.name) == [
        ("skipped", 2, "10:00", "11:00"),
        ("caught_up", 1, "12:00", "12:00"),
    ]
    assert last_run_at(db, every_hour.name) == at("12:00")


def test_all_enqueues_every_missed_occurrence(db: Engine) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    step(db, every_hour, at("12:30"))
    assert enqueued(db, every_hour.name) == ["10:00", "11:00", "12:00"]
    assert events(db, every_hour.name) == [("caught_up", 3, "10:00", "12:00")]


def test_all_is_capped_at_the_newest_max_catch_up_occurrences(db: Engine) -> None:
    every_minute = Schedule(
        "t.minutes", schedule.every().minute, "test.noop", missed="all", max_catch_up=24
    )
    step(db, every_minute, at("10:00:30"))
    step(db, every_minute, at("12:00:30"))  # 120 minutes missed
    runs = enqueued(db, every_minute.name)
    assert len(runs) == 24 and runs[0] == "11:37" and runs[-1] == "12:00"
    assert events(db, every_minute.name) == [
        ("skipped", 96, "10:01", "11:36"),
        ("caught_up", 23, "11:37", "11:59"),  # 12:00 itself is on time
    ]


def test_ages_of_missed_seconds_are_recorded_as_the_most_an_event_can_count(db: Engine) -> None:
    """A state row from year 2 (restored, or written by hand): 63 billion seconds missed."""
    every_second = Schedule("t.seconds", schedule.every().second, "test.noop", missed="latest")
    step(db, every_second, at("10:00:00"))
    with db.begin() as conn:
        conn.execute(text("UPDATE cron_state SET last_run_at = '0002-01-01 00:00+00'"))
    step(db, every_second, at("10:00:30"))
    assert enqueued(db, every_second.name)[-1] == "10:00"
    [(kind, n, _, _)] = events(db, every_second.name)
    assert (kind, n) == ("skipped", 2**31 - 1)


@pytest.mark.parametrize("column", ["last_run_at", "paused_at", "removed_at"])
@pytest.mark.parametrize("when", ["infinity", "-infinity", "9999-12-29 00:00+00"])
def test_no_schedule_state_may_hold_a_time_past_its_next_occurrence(
    db: Engine, column: str, when: str
) -> None:
    """A last run at 'infinity' failed every step of its schedule, one in year 9999
    every listing of it (the next occurrence is no time Python has)."""
    values = {"last_run_at": "2026-11-26 10:00+00", column: when}
    with pytest.raises(IntegrityError, match=f"{column}_readable"), db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state (name, last_run_at, paused_at, removed_at)"
                " VALUES ('t.state', :last_run_at, :paused_at, :removed_at)"
            ),
            {"paused_at": None, "removed_at": None, **values},
        )


def test_skip_enqueues_nothing_that_was_missed(db: Engine) -> None:
    every_hour = hourly("skip")
    step(db, every_hour, at("09:30"))
    step(db, every_hour, at("12:30"))
    assert enqueued(db, every_hour.name) == []
    assert events(db, every_hour.name) == [("skipped", 3, "10:00", "12:00")]
    assert last_run_at(db, every_hour.name) == at("12:00")


def test_skip_still_runs_the_occurrence_that_is_on_time(db: Engine) -> None:
    every_hour = hourly("skip")
    step(db, every_hour, at("09:30"))
    step(db, every_hour, at("12:00:05"))
    assert enqueued(db, every_hour.name) == ["12:00"]
    assert events(db, every_hour.name) == [("skipped", 2, "10:00", "11:00")]


def test_a_step_never_enqueues_an_occurrence_twice_nor_moves_back(db: Engine) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    step(db, every_hour, at("10:00:01"))
    step(db, every_hour, at("10:00:01"))
    step(db, every_hour, at("09:59:59"))  # a peer whose transaction began earlier
    assert enqueued(db, every_hour.name) == ["10:00"]
    assert last_run_at(db, every_hour.name) == at("10:00")


def test_a_peer_holding_the_schedule_is_skipped_not_waited_for(db: Engine) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    with Session(db) as holder, holder.begin():
        assert catch_up(holder, every_hour, at("10:00:01")).enqueued == [at("10:00")]
        assert step(db, every_hour, at("10:00:01")).busy
    assert not step(db, every_hour, at("10:00:02")).busy
    assert enqueued(db, every_hour.name) == ["10:00"]


def test_a_crash_before_commit_leaves_the_occurrence_for_the_next_step(db: Engine) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    with Session(db) as crashed:
        catch_up(crashed, every_hour, at("10:00:01"))
        crashed.rollback()
    assert enqueued(db, every_hour.name) == []
    step(db, every_hour, at("10:00:03"))
    assert enqueued(db, every_hour.name) == ["10:00"]


def test_skip_if_running_skips_while_the_previous_job_lives(db: Engine) -> None:
    every_minute = Schedule(
        "t.exclusive", schedule.every().minute, "test.noop", skip_if_running=True
    )
    step(db, every_minute, at("10:00:30"))
    for clock in ("10:01:01", "10:02:01", "10:03:01"):
        step(db, every_minute, at(clock))
    assert enqueued(db, every_minute.name) == ["10:01"]
    assert events(db, every_minute.name) == [("skipped", 2, "10:02", "10:03")]
    drain(db)
    step(db, every_minute, at("10:04:01"))
    assert enqueued(db, every_minute.name) == ["10:01", "10:04"]


def test_the_handler_can_ask_which_occurrence_its_job_stands_for(
    db: Engine, tmp_path: Path
) -> None:
    marks = tmp_path / "occurrences"
    daily = Schedule(
        "t.digest", schedule.every().day.at("06:00"), "test.occurrence", {"path": str(marks)}
    )
    step(db, daily, datetime(2026, 11, 25, 12, tzinfo=UTC))
    step(db, daily, datetime(2026, 11, 26, 6, 0, 1, tzinfo=UTC))
    drain(db)
    assert marks.read_text() == "2026-11-26T06:00:00+00:00\n"
