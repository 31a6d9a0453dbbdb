"""Schedule arithmetic: occurrences on a fixed grid, asked of any clock, DST both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schedule

from app.cron import Schedule
from app.cron.occurrences import AnyGrid, between, count, following, latest, newest


def at(text: str) -> datetime:
    """An aware moment: '2026-11-26 12:03:07' is UTC unless it carries an offset."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def grid(every: Any, timezone: str = "UTC") -> AnyGrid:
    return Schedule("test", every, "test.noop", timezone=timezone).grid


@pytest.mark.parametrize(
    ("every", "moment", "previous", "next_"),
    [
        (schedule.every(10).seconds, "2026-11-26 12:00:07", "12:00:00", "12:00:10"),
        (schedule.every().second, "2026-11-26 12:00:07.5", "12:00:07", "12:00:08"),
        (schedule.every(5).minutes, "2026-11-26 12:03:07", "12:00:00", "12:05:00"),
        (schedule.every().minute.at(":30"), "2026-11-26 12:03:07", "12:02:30", "12:03:30"),
        (schedule.every().hour, "2026-11-26 12:03:07", "12:00:00", "13:00:00"),
        (schedule.every().hour.at(":15"), "2026-11-26 12:03:07", "11:15:00", "12:15:00"),
        (schedule.every(2).hours, "2026-11-26 13:03:07", "12:00:00", "14:00:00"),
        (schedule.every().day.at("06:00"), "2026-11-26 12:03:07", "06:00:00", "06:00:00+1"),
        (schedule.every().day, "2026-11-26 12:03:07", "00:00:00", "00:00:00+1"),
    ],
)
def test_every_unit_falls_on_a_fixed_grid_whenever_it_is_asked(
    every: Any, moment: str, previous: str, next_: str
) -> None:
    day = moment[:10]
    next_day = (at(day) + timedelta(days=1)).date().isoformat() if next_.endswith("+1") else day
    assert latest(grid(every), at(moment)) == at(f"{day} {previous}")
    assert following(grid(every), at(moment)) == at(f"{next_day} {next_.removesuffix('+1')}")


def test_an_occurrence_exactly_now_is_the_latest_and_the_next_one_follows() -> None:
    every_minute = grid(schedule.every().minute)
    assert latest(every_minute, at("2026-11-26 12:03:00")) == at("2026-11-26 12:03:00")
    assert following(every_minute, at("2026-11-26 12:03:00")) == at("2026-11-26 12:04:00")


def test_every_n_days_counts_from_the_epoch_so_every_process_agrees() -> None:
    every_3_days = grid(schedule.every(3).days.at("06:00"))
    days = between(every_3_days, at("2026-11-20 00:00"), at("2026-11-30 00:00"))
    assert [d.day for d in days] == [21, 24, 27]
    assert all((d - at("1970-01-01 06:00")).days % 3 == 0 for d in days)


def test_weekly_on_a_weekday_at_a_time() -> None:
    mondays = grid(schedule.every().monday.at("09:30"))
    assert following(mondays, at("2026-11-26 12:00")) == at("2026-11-30 09:30")
    assert latest(mondays, at("2026-11-30 09:29")) == at("2026-11-23 09:30")
    assert count(mondays, at("2026-11-01 00:00"), at("2026-12-01 00:00")) == 5


def test_every_two_weeks_falls_on_alternate_mondays() -> None:
    fortnightly = grid(schedule.every(2).weeks)
    found = between(fortnightly, at("2026-11-01"), at("2026-12-31"))
    assert all(d.weekday() == 0 for d in found)
    assert [b - a for a, b in zip(found, found[1:], strict=False)] == [timedelta(days=14)] * 3


def test_a_daily_time_is_wall_clock_time_in_the_schedules_timezone() -> None:
    new_york = grid(schedule.every().day.at("06:00"), "America/New_York")
    assert following(new_york, at("2026-01-15 00:00")) == at("2026-01-15 11:00")  # EST
    assert following(new_york, at("2026-07-15 00:00")) == at("2026-07-15 10:00")  # EDT


def test_spring_forward_a_missing_0230_runs_once_at_0330() -> None:
    berlin = grid(schedule.every().day.at("02:30"), "Europe/Berlin")
    runs = between(berlin, at("2026-03-28 00:00"), at("2026-03-31 00:00"))
    local = [r.astimezone(berlin.zone).isoformat() for r in runs]
    assert local == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
    ]


def test_fall_back_a_doubled_0230_runs_once_at_the_first() -> None:
    berlin = grid(schedule.every().day.at("02:30"), "Europe/Berlin")
    runs = between(berlin, at("2026-10-24 00:00"), at("2026-10-27 00:00"))
    local = [r.astimezone(berlin.zone).isoformat() for r in runs]
    assert local == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # the second 02:30 (+01:00) an hour later is not a run
        "2026-10-26T02:30:00+01:00",
    ]


def test_hourly_schedules_count_real_hours_across_daylight_saving() -> None:
    hourly = grid(schedule.every().hour, "Europe/Berlin")
    # Local midnight to midnight: 23 real hours in spring, 25 in autumn.
    assert count(hourly, at("2026-03-28 23:00"), at("2026-03-29 22:00")) == 23
    assert count(hourly, at("2026-10-24 22:00"), at("2026-10-25 23:00")) == 25


def test_count_and_newest_agree_without_walking_a_long_gap() -> None:
    every_second = grid(schedule.every().second)
    after, until = at("2026-10-01 00:00"), at("2026-11-01 00:00:00.5")
    assert count(every_second, after, until) == 31 * 86_400
    assert newest(every_second, after, until, 3) == [
        at("2026-10-31 23:59:58"),
        at("2026-10-31 23:59:59"),
        at("2026-11-01 00:00:00"),
    ]
    assert count(every_second, until, after) == 0


def test_the_interval_is_half_open_after_excluded_until_included() -> None:
    hourly = grid(schedule.every().hour)
    assert between(hourly, at("2026-11-26 10:00"), at("2026-11-26 12:00")) == [
        at("2026-11-26 11:00"),
        at("2026-11-26 12:00"),
    ]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        latest(grid(schedule.every().hour), datetime(2026, 11, 26, 12))


@pytest.mark.parametrize(
    ("every", "options", "message"),
    [
        (schedule.every(5).to(10).minutes, {}, "randomised"),
        (schedule.every(5), {}, "no unit"),
        (schedule.every().hour, {"timezone": "Mars/Olympus"}, "unknown timezone"),
        (schedule.every().hour, {"missed": "some"}, "missed must be one of"),
        ("every hour", {}, "not a crontab expression"),
    ],
)
def test_a_schedule_that_cannot_be_computed_is_refused_at_definition(
    every: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Schedule("bad", every, "test.noop", **options)


def test_schedules_describe_themselves_for_people() -> None:
    def describe(every: Any, timezone: str = "UTC") -> str:
        return Schedule("s", every, "test.noop", timezone=timezone).describe()

    assert describe(schedule.every(5).minutes) == "every 5 minutes"
    assert describe(schedule.every().hour.at(":30")) == "every hour at :30"
    assert describe(schedule.every().day.at("06:00"), "Europe/Berlin") == (
        "every day at 06:00 (Europe/Berlin)"
    )
    assert describe(schedule.every().monday.at("09:30")) == "every monday at 09:30 (UTC)"
