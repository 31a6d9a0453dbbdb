"""A changed, renamed or removed definition: never mistaken for downtime.

As in tests/test_cron_catch_up.py, the clock is the test's: `catch_up` takes
`now`, so a definition changed at any moment plays out at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schedule
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.cron import Schedule, orphans
from app.cron.firing import Step, catch_up
from tests.test_cron_catch_up import at, enqueued, last_run_at


def step(engine: Engine, schedule: Schedule, now: datetime, **options: Any) -> Step:
    with Session(engine) as session, session.begin():
        return catch_up(session, schedule, now, **options)


def every(
    definition: Any, missed: Any = "all", name: str = "t.redefined", **options: Any
) -> Schedule:
    return Schedule(name, definition, "test.noop", missed=missed, **options)


def events(engine: Engine, name: str) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT kind, occurrences, reason FROM cron_events WHERE name = :n ORDER BY 1"),
            {"n": name},
        )
        return [(kind, count, reason) for kind, count, reason in rows]


def fingerprint(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        found: str | None = conn.execute(
            text("SELECT fingerprint FROM cron_state WHERE name = :n"), {"n": name}
        ).scalar_one()
        return found


def test_a_shorter_interval_starts_from_now_instead_of_a_burst(db: Engine) -> None:
    step(db, every(schedule.every(10).minutes), at("10:00:30"))
    step(db, every(schedule.every(10).minutes), at("10:00:31"))
    every_minute = every(schedule.every(1).minutes)
    assert step(db, every_minute, at("10:06:30")).enqueued == []  # not 10:01 ... 10:06
    step(db, every_minute, at("10:07:01"))
    assert enqueued(db, every_minute.name) == ["10:07"]
    assert events(db, every_minute.name) == [
        (
            "redefined",
            0,
            "definition changed from every 10 minutes (UTC) to every 1 minutes (UTC)",
        )
    ]
    assert fingerprint(db, every_minute.name) == "every 1 minutes (UTC)"


def test_a_daily_time_moved_later_does_not_run_twice_that_day(db: Engine) -> None:
    six = every(schedule.every().day.at("06:00"), "latest")
    step(db, six, at("05:00"))
    step(db, six, at("06:00:01"))
    seven = every(schedule.every().day.at("07:00"), "latest")
    step(db, seven, at("10:00"))
    step(db, seven, at("10:00:01"))
    assert enqueued(db, seven.name) == ["06:00"]
    assert last_run_at(db, seven.name) == at("07:00")
    tomorrow = datetime(2026, 11, 27, 7, 0, 1, tzinfo=UTC)
    assert step(db, seven, tomorrow).enqueued == [tomorrow.replace(second=0)]


def test_a_changed_timezone_is_a_redefinition(db: Engine) -> None:
    step(db, every(schedule.every().day.at("06:00")), at("04:00"))
    berlin = every(schedule.every().day.at("06:00"), timezone="Europe/Berlin")
    assert step(db, berlin, at("05:30")).enqueued == []  # 06:00 Berlin was 05:00 UTC
    assert [kind for kind, _, _ in events(db, berlin.name)] == ["redefined"]


def test_a_changed_policy_is_not_a_redefinition(db: Engine) -> None:
    step(db, every(schedule.every().hour, "latest"), at("09:30"))
    assert step(db, every(schedule.every().hour, "all"), at("12:30")).enqueued == [
        at("10:00"),
        at("11:00"),
        at("12:00"),
    ]
    assert "redefined" not in [kind for kind, _, _ in events(db, "t.redefined")]


def test_state_written_before_definitions_were_kept_is_adopted_as_is(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO cron_state (name, last_run_at) VALUES ('t.redefined', :t)"),
            {"t": at("09:00")},
        )
    hourly = every(schedule.every().hour)
    assert step(db, hourly, at("11:00:01")).enqueued == [at("10:00"), at("11:00")]
    assert fingerprint(db, hourly.name) == "every 1 hours (UTC)"


def test_a_schedule_removed_and_put_back_30_hours_later_starts_afresh(db: Engine) -> None:
    hourly = every(schedule.every().hour)
    step(db, hourly, at("09:30"))
    with Session(db) as session, session.begin():  # a cron process starts without it
        assert orphans.mark_removed(session, ["t.other"]) == [hourly.name]
    back = at("09:30") + timedelta(hours=30)
    assert step(db, hourly, back).enqueued == []  # not the newest 24 of 30 hours
    reason = events(db, hourly.name)[0][2]
    assert reason.startswith("back in code after a cron process found it removed at ")
    step(db, hourly, back + timedelta(minutes=30, seconds=1))
    assert enqueued(db, hourly.name) == ["16:00"]


def test_a_process_older_than_the_removal_keeps_stepping_it_as_before(db: Engine) -> None:
    hourly = every(schedule.every().hour)
    step(db, hourly, at("09:30"))
    with Session(db) as session, session.begin():
        orphans.mark_removed(session, [])
    started = datetime(2000, 1, 1, tzinfo=UTC)  # long before the removal was noticed
    assert step(db, hourly, at("10:00:01"), since=started).enqueued == [at("10:00")]
    assert events(db, hourly.name) == []


def test_removal_is_marked_once_and_only_for_schedules_not_in_code(db: Engine) -> None:
    for name in ("t.kept", "t.gone"):
        step(db, every(schedule.every().hour, name=name), at("09:30"))
    with Session(db) as session, session.begin():
        assert orphans.mark_removed(session, ["t.kept"]) == ["t.gone"]
    with Session(db) as session, session.begin():
        assert orphans.mark_removed(session, ["t.kept"]) == []  # the first notice stands


def test_removed_schedules_are_pruned_with_their_events_after_the_retention(db: Engine) -> None:
    for name in ("t.old", "t.recent", "t.defined"):
        step(db, every(schedule.every().hour, name=name), at("09:30"))
        step(db, every(schedule.every().hour, name=name), at("12:30"))  # writes events
    with db.begin() as conn:
        conn.execute(
            text(
                "UPDATE cron_state SET removed_at = now() - CASE name"
                " WHEN 't.old' THEN interval '31 days' ELSE interval '29 days' END"
            )
        )
    with Session(db) as session, session.begin():
        assert orphans.prune(session, ["t.defined"], retention_days=30) == ["t.old"]
    with db.connect() as conn:
        states = conn.execute(text("SELECT name FROM cron_state ORDER BY 1")).scalars().all()
        named = conn.execute(text("SELECT DISTINCT name FROM cron_events ORDER BY 1")).scalars()
        assert (states, named.all()) == (["t.defined", "t.recent"], ["t.defined", "t.recent"])
