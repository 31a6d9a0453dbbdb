"""Crontab expressions: the same grid questions, DST as the daily and hourly schedules have it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schedule
from sqlalchemy import Engine

from app.cron import Schedule, ScheduleError
from app.cron.crontab import CronGrid
from app.cron.occurrences import AnyGrid, between, count, following, latest, newest
from tests.test_cron_catch_up import at as today_at
from tests.test_cron_catch_up import enqueued, events, step
from tests.test_cron_occurrences import at


def grid(every: Any, timezone: str = "UTC") -> AnyGrid:
    return Schedule("test", every, "test.noop", timezone=timezone).grid


def local(runs: list[datetime], timezone: str) -> list[str]:
    zone = grid("* * * * *", timezone).zone
    return [run.astimezone(zone).isoformat() for run in runs]


def test_weekdays_at_0630_in_the_schedules_timezone() -> None:
    workdays = grid("30 6 * * 1-5", "Europe/Berlin")
    friday_evening = at("2026-11-27 18:00")
    assert local([following(workdays, friday_evening)], "Europe/Berlin") == [
        "2026-11-30T06:30:00+01:00"  # Monday
    ]
    assert latest(workdays, friday_evening) == at("2026-11-27 05:30")
    assert count(workdays, at("2026-11-01 00:00"), at("2026-12-01 00:00")) == 21


def test_an_occurrence_exactly_now_is_the_latest_and_the_next_one_follows() -> None:
    every_five = grid("*/5 * * * *")
    assert latest(every_five, at("2026-11-26 12:05")) == at("2026-11-26 12:05")
    assert following(every_five, at("2026-11-26 12:05")) == at("2026-11-26 12:10")
    assert between(every_five, at("2026-11-26 12:00"), at("2026-11-26 12:10")) == [
        at("2026-11-26 12:05"),
        at("2026-11-26 12:10"),
    ]


def test_a_fixed_time_on_the_spring_forward_night_runs_once_at_the_time_plus_the_gap() -> None:
    runs = between(grid("30 2 * * *", "Europe/Berlin"), at("2026-03-28 00:00"), at("2026-03-31"))
    assert local(runs, "Europe/Berlin") == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
    ]


def test_a_fixed_time_on_the_fall_back_night_runs_once_at_the_first() -> None:
    runs = between(grid("30 2 * * *", "Europe/Berlin"), at("2026-10-24 00:00"), at("2026-10-27"))
    assert local(runs, "Europe/Berlin") == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_fixed_hours_moved_by_the_gap_merge_with_the_times_already_there() -> None:
    runs = between(
        grid("0,30 2-3 * * *", "Europe/Berlin"), at("2026-03-28 23:00"), at("2026-03-29 12:00")
    )
    assert local(runs, "Europe/Berlin") == [
        "2026-03-29T03:00:00+02:00",  # 02:00 and 03:00, once
        "2026-03-29T03:30:00+02:00",  # 02:30 and 03:30, once
    ]


def test_an_hour_wildcard_runs_in_every_real_hour_across_daylight_saving() -> None:
    quarterly = grid("*/15 * * * *", "Europe/Berlin")
    # Local midnight to midnight: 23 real hours in spring, 25 in autumn.
    assert count(quarterly, at("2026-03-28 23:00"), at("2026-03-29 22:00")) == 23 * 4
    assert count(quarterly, at("2026-10-24 22:00"), at("2026-10-25 23:00")) == 25 * 4
    repeated = between(quarterly, at("2026-10-25 00:00"), at("2026-10-25 01:00"))
    assert local(repeated, "Europe/Berlin") == [
        "2026-10-25T02:15:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:45:00+02:00",
        "2026-10-25T02:00:00+01:00",  # the same local times again, an hour later
    ]


@pytest.mark.parametrize(
    ("expression", "definition", "timezone"),
    [
        ("30 6 * * *", schedule.every().day.at("06:30"), "America/New_York"),
        ("30 2 * * *", schedule.every().day.at("02:30"), "Europe/Berlin"),
        ("0 9 * * mon", schedule.every().monday.at("09:00"), "Europe/Berlin"),
        ("0 * * * *", schedule.every().hour, "Europe/Berlin"),
        ("*/10 * * * *", schedule.every(10).minutes, "America/New_York"),
        ("0 * * * *", schedule.every().hour, "Asia/Kolkata"),
    ],
)
def test_a_crontab_and_its_schedule_twin_agree_on_every_occurrence_of_a_year(
    expression: str, definition: Any, timezone: str
) -> None:
    year = (at("2026-01-01 00:00"), at("2027-01-01 00:00"))
    expected = between(grid(definition, timezone), *year)
    assert between(grid(expression, timezone), *year) == expected


def test_newest_walks_back_from_the_end_of_a_long_gap() -> None:
    every_minute = grid("* * * * *")
    after, until = at("2026-10-01 00:00"), at("2026-11-01 00:00:30")
    assert count(every_minute, after, until) == 31 * 1440
    assert newest(every_minute, after, until, 2) == [at("2026-10-31 23:59"), at("2026-11-01 00:00")]


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("*/7 * * * 1-5", "America/New_York"),
        ("30 2 * * *", "Europe/Berlin"),
        ("15,45 1-3 * * *", "America/Sao_Paulo"),
        ("0 0 L * *", "Australia/Lord_Howe"),
        ("0 12 * * 0#2", "UTC"),
        ("*/30 0,1 * * *", "America/Havana"),
    ],
)
def test_a_long_count_is_the_same_as_walking_every_occurrence(
    expression: str, timezone: str
) -> None:
    """Counted by matching days, checked against the walk over spans crossing changes of
    the clocks, of every length from a few days to more than a year."""
    cron = grid(expression, timezone)
    assert isinstance(cron, CronGrid)
    start = at("2024-02-20 13:37")
    for days in (3, 4, 40, 190, 400):
        for shift in (0, 17, 101):
            after = start + timedelta(days=shift, minutes=7 * shift)
            until = after + timedelta(days=days, hours=5, minutes=11)
            assert count(cron, after, until) == cron._walk_count(after, until), (days, shift)


def test_counting_years_of_a_minutely_crontab_takes_a_step_per_day() -> None:
    """Three years of downtime: 1.6 million occurrences, counted without walking them."""
    every_minute = grid("* * * * *", "Europe/Berlin")
    assert count(every_minute, at("2023-01-01 00:00"), at("2026-01-01 00:00")) == 1096 * 1440


def test_a_gap_of_ages_counts_its_last_century() -> None:
    daily = grid("0 6 * * *")
    assert count(daily, at("0002-01-01 00:00"), at("2026-01-01 00:00")) == 36_525


def test_macros_are_their_five_fields() -> None:
    assert grid("@daily").fingerprint == grid("0 0 * * *").fingerprint == "cron 0 0 * * * (UTC)"
    assert grid("@hourly") == grid("0  *  * * *")


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("61 * * * *", "not a crontab expression (Bad minute)"),
        ("* * * *", "not a crontab expression (Wrong number of fields)"),
        ("* * * * * *", "a crontab expression has five fields"),
        ("0 0 30 2 *", "not a crontab expression (Bad day-of-month)"),
        ("0 0 * * *\x00", "not a crontab expression"),
        ("* " * 200, "at most 200 characters"),
        (5, "expected a crontab expression or a schedule.every(...) definition"),
    ],
)
def test_an_expression_cron_cannot_read_is_refused_with_the_schedules_name(
    every: Any, message: str
) -> None:
    with pytest.raises(ScheduleError, match="^schedule 'reports.cron': ") as refused:
        Schedule("reports.cron", every, "test.noop")
    assert message in str(refused.value)


def test_crontab_schedules_describe_themselves() -> None:
    described = Schedule("c", "30 6 * * 1-5", "test.noop", timezone="Europe/Berlin").describe()
    assert described == "cron 30 6 * * 1-5 (Europe/Berlin)"


def test_a_crontab_schedule_catches_up_per_policy_like_any_other(db: Engine) -> None:
    hourly = Schedule("t.crontab", "0 * * * *", "test.noop", missed="all")
    step(db, hourly, today_at("09:30"))
    step(db, hourly, today_at("12:30"))  # down for three hours
    assert enqueued(db, hourly.name) == ["10:00", "11:00", "12:00"]
    assert events(db, hourly.name) == [("caught_up", 3, "10:00", "12:00")]
    step(db, Schedule("t.crontab", "30 * * * *", "test.noop", missed="all"), today_at("13:10"))
    assert enqueued(db, hourly.name) == ["10:00", "11:00", "12:00"]  # redefined: from now
    assert [kind for kind, *_ in events(db, hourly.name)] == ["caught_up", "redefined"]


def test_an_expression_that_matches_rarely_is_found_far_away() -> None:
    leap_day = grid("0 0 29 2 *")
    assert following(leap_day, at("2026-11-26 00:00")) == datetime(2028, 2, 29, tzinfo=UTC)
    assert latest(leap_day, at("2026-11-26 00:00")) == datetime(2024, 2, 29, tzinfo=UTC)
    assert latest(leap_day, at("2028-02-29 00:00") + timedelta(seconds=1)).year == 2028
