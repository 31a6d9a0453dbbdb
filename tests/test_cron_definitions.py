"""Schedule definitions: each one either means exactly what it says or is refused by name."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import schedule

from app.cron import Schedule, ScheduleError, load_schedules, schedules
from app.cron.occurrences import following, latest
from tests.test_cron_occurrences import at

ROOT = Path(__file__).resolve().parent.parent


def every(interval: Any) -> Any:
    """`schedule.every` with what its type hints forbid but people still write."""
    return schedule.every(interval)


@pytest.mark.parametrize(
    ("every", "options", "message"),
    [
        (every(1.5).days, {}, "whole number of at least 1, got 1.5"),
        (every(2.5).days, {}, "whole number of at least 1, got 2.5"),
        (every("5").minutes, {}, "whole number of at least 1, got '5'"),
        (every(True).hours, {}, "whole number of at least 1, got True"),
        (schedule.every(10**20).seconds, {}, "too long"),
        (schedule.every().hour, {"max_catch_up": "5"}, "max_catch_up must be a whole number"),
        (schedule.every().hour, {"max_catch_up": 2.5}, "max_catch_up must be a whole number"),
        (schedule.every().hour, {"max_catch_up": 10**9}, "from 1 to 1000"),
        (schedule.every().hour, {"timezone": None}, "timezone must be an IANA name"),
        (schedule.every().hour, {"timezone": ""}, "timezone must be an IANA name"),
        (schedule.every().day, {"timezone": "../../etc/passwd"}, "unknown timezone"),
        (schedule.every().day, {"timezone": "Europe/Berlin\x00"}, "unknown timezone"),
        (schedule.every().hour, {"skip_if_running": "no"}, "skip_if_running must be True or"),
        (schedule.every().hour, {"missed": ["all"]}, "missed must be one of"),
        (schedule.every().hour, {"payload": [1, 2]}, "payload must be a mapping"),
    ],
)
def test_a_definition_that_would_be_misread_is_refused_with_the_schedules_name(
    every: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleError, match="^schedule 'reports.nightly': ") as refused:
        Schedule("reports.nightly", every, "test.noop", **options)
    assert message in str(refused.value)


@pytest.mark.parametrize("name", ["", "two words", "a/b", "line\nbreak", "x" * 201, None])
def test_a_name_that_cannot_key_urls_logs_and_the_command_line_is_refused(name: Any) -> None:
    with pytest.raises(ScheduleError, match="a schedule needs a name"):
        Schedule(name, schedule.every().hour, "test.noop")


def test_a_timezone_given_to_at_is_refused_with_a_pointer_to_timezone() -> None:
    # With pytz installed, .at(time, tz) returns; the definition still says a zone.
    definition = schedule.every().day.at("06:00")
    definition.at_time_zone = ZoneInfo("Europe/Berlin")
    with pytest.raises(ScheduleError, match="^schedule 'berlin': .*timezone=") as refused:
        Schedule("berlin", definition, "test.noop")
    assert "pytz" in str(refused.value)


def write_module(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text(
        "import schedule\nfrom app.cron import Schedule, add\n\n" + textwrap.dedent(body)
    )
    return name


@pytest.fixture
def module_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for schedule modules written by the test.

    The app's own schedules are loaded first, for good; whatever the test's
    modules register is taken out of the process-wide registry afterwards.
    """
    load_schedules()
    before = set(schedules._schedules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(schedules._schedules) - before:
        del schedules._schedules[name]


def test_at_with_a_timezone_in_a_job_module_names_the_line_and_points_to_timezone(
    module_folder: Path,
) -> None:
    module = write_module(
        module_folder,
        "berlin_digest",
        """
        add(Schedule("digest", schedule.every().day.at("06:00", "Europe/Berlin"), "test.noop"))
        """,
    )
    with pytest.raises(ScheduleError, match='timezone="Europe/Berlin"') as refused:
        load_schedules([module])
    message = str(refused.value)
    if "line" in message:  # pytz is not installed: the schedule library stopped on line 5
        assert message.startswith(f"{module_folder / 'berlin_digest.py'}, line 5: ")
    else:
        assert message.startswith("schedule 'digest': ")


def test_a_schedule_of_an_unknown_job_is_refused_by_name_at_load(module_folder: Path) -> None:
    module = write_module(
        module_folder,
        "typo_schedule",
        """
        add(Schedule("reports.weekly", schedule.every().monday, "reports.biuld"))
        """,
    )
    with pytest.raises(ScheduleError, match="^schedule 'reports.weekly': .*reports.biuld"):
        load_schedules([module])


def test_cron_exits_with_one_line_naming_the_schedule_on_a_bad_definition(
    tmp_path: Path, process_env: dict[str, str]
) -> None:
    module = write_module(
        tmp_path,
        "fractional",
        """
        add(Schedule("backups.every_36h", schedule.every(1.5).days, "test.noop"))
        """,
    )
    env = {**process_env, "JOB_MODULES": f"tests.jobs,{module}", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "cron.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "cron: schedule 'backups.every_36h': the interval must be a whole number of at least 1,"
        " got 1.5"
    ]


def test_an_hourly_schedule_in_a_half_hour_zone_runs_at_local_full_hours() -> None:
    kolkata = Schedule("k", schedule.every().hour, "test.noop", timezone="Asia/Kolkata").grid
    found = following(kolkata, at("2026-11-26 12:03"))
    assert found.astimezone(kolkata.zone).isoformat() == "2026-11-26T18:00:00+05:30"
    quarter = Schedule("n", schedule.every().hour.at(":15"), "test.noop", timezone="Asia/Kathmandu")
    assert latest(quarter.grid, at("2026-11-26 12:03")).astimezone(quarter.grid.zone).minute == 15


def test_a_minute_grid_that_divides_the_zones_offset_is_unchanged() -> None:
    kolkata = Schedule("k", schedule.every(15).minutes, "test.noop", timezone="Asia/Kolkata").grid
    assert latest(kolkata, at("2026-11-26 12:07")) == at("2026-11-26 12:00")


def test_hourly_in_a_zone_whose_clocks_move_by_half_an_hour_is_refused() -> None:
    with pytest.raises(ScheduleError, match="Australia/Lord_Howe moves its clocks by part"):
        Schedule("lh", schedule.every().hour, "test.noop", timezone="Australia/Lord_Howe")
    # Every 30 minutes falls on the local :00 and :30 in both seasons: accepted.
    Schedule("lh", schedule.every(30).minutes, "test.noop", timezone="Australia/Lord_Howe")


def test_whole_hour_zones_keep_the_utc_grid_for_hours() -> None:
    berlin = Schedule("b", schedule.every(2).hours, "test.noop", timezone="Europe/Berlin").grid
    assert latest(berlin, at("2026-07-01 13:10")) == at("2026-07-01 12:00")


def test_the_fingerprint_changes_with_the_grid_or_the_timezone_only() -> None:
    def fingerprint(every: Any, **options: Any) -> str:
        return Schedule("f", every, "test.noop", **options).fingerprint

    daily = fingerprint(schedule.every().day.at("06:00"), timezone="Europe/Berlin")
    assert daily == "every 1 days at 06:00:00 (Europe/Berlin)"
    assert daily == fingerprint(
        schedule.every().day.at("06:00"), timezone="Europe/Berlin", missed="all"
    )
    assert daily != fingerprint(schedule.every().day.at("07:00"), timezone="Europe/Berlin")
    assert daily != fingerprint(schedule.every().day.at("06:00"), timezone="Europe/Paris")
    assert fingerprint(schedule.every().monday.at("09:30")) == (
        "every 1 weeks on monday at 09:30:00 (UTC)"
    )


def test_definitions_the_library_accepts_and_cron_can_compute_still_work() -> None:
    for definition in (
        schedule.every(10).seconds,
        schedule.every().minute.at(":30"),
        schedule.every(3).days.at("06:00"),
        schedule.every(2).weeks,
        schedule.every().sunday.at("23:59:59"),
    ):
        Schedule("ok", definition, "test.noop", timezone="America/New_York", max_catch_up=1000)
