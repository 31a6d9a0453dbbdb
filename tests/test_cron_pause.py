"""Pausing a schedule: stored in its state, honoured by every step, nothing owed on resume."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
import schedule
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.cron import Policy, Schedule, control
from app.cron.firing import Step, catch_up
from tests.test_cron_catch_up import at, enqueued, events, last_run_at


def step(engine: Engine, schedule: Schedule, now: datetime) -> Step:
    with Session(engine) as session, session.begin():
        return catch_up(session, schedule, now)


def pause(
    engine: Engine, schedule: Schedule, by: str = "ops@example.com", now: str = "09:45"
) -> bool:
    with Session(engine) as session, session.begin():
        return control.pause(session, schedule, by, now=at(now))


def resume(engine: Engine, schedule: Schedule, now: str = "10:30") -> bool:
    with Session(engine) as session, session.begin():
        return control.resume(session, schedule, now=at(now))


def hourly(missed: Policy = "all") -> Schedule:
    return Schedule("t.paused", schedule.every().hour, "test.noop", missed=missed)


def test_a_paused_schedule_skips_every_occurrence_and_records_it_once(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    every_hour = hourly()
    step(db, every_hour, at("09:30"))
    assert pause(db, every_hour)
    with caplog.at_level(logging.WARNING, logger="app.cron.events"):
        for clock in ("10:00:01", "11:00:01", "12:00:01"):
            assert step(db, every_hour, at(clock)).enqueued == []
    # One line for the event, not one per skip (every second, for a paused every-second one).
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith("schedule t.paused: skipped 1 occurrence(s) from 2026-11-26T10:00")
    assert enqueued(db, every_hour.name) == []
    assert events(db, every_hour.name) == [("skipped", 3, "10:00", "12:00")]
    with db.connect() as conn:
        reason = conn.execute(text("SELECT reason FROM cron_events")).scalar_one()
    assert reason == "paused by ops@example.com"


def test_resumed_it_owes_nothing_and_runs_from_its_next_occurrence(db: Engine) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    pause(db, every_hour)
    step(db, every_hour, at("10:00:01"))
    assert resume(db, every_hour, "10:30")
    step(db, every_hour, at("10:30:01"))
    step(db, every_hour, at("11:00:01"))
    assert enqueued(db, every_hour.name) == ["11:00"]


def test_occurrences_that_fell_due_while_paused_and_cron_was_away_are_not_caught_up(
    db: Engine,
) -> None:
    every_hour = hourly("all")
    step(db, every_hour, at("09:30"))
    pause(db, every_hour)
    # cron is down from here to 12:30, and the schedule is resumed at 12:10
    assert resume(db, every_hour, "12:10")
    step(db, every_hour, at("12:30"))
    assert enqueued(db, every_hour.name) == []
    assert events(db, every_hour.name) == [("skipped", 3, "10:00", "12:00")]
    assert last_run_at(db, every_hour.name) == at("12:00")


def test_pausing_a_schedule_cron_never_saw_starts_it_from_now_paused(db: Engine) -> None:
    every_hour = hourly()
    assert pause(db, every_hour, now="09:45")
    with db.connect() as conn:
        state = conn.execute(text("SELECT fingerprint, paused_by FROM cron_state")).one()
    assert tuple(state) == ("every 1 hours (UTC)", "ops@example.com")
    assert last_run_at(db, every_hour.name) == at("09:00")


def test_the_first_pause_stands_and_resuming_what_runs_changes_nothing(db: Engine) -> None:
    every_hour = hourly()
    assert not resume(db, every_hour)
    assert pause(db, every_hour, "first@example.com")
    assert not pause(db, every_hour, "second@example.com")
    with db.connect() as conn:
        assert conn.execute(text("SELECT paused_by FROM cron_state")).scalar_one() == (
            "first@example.com"
        )
