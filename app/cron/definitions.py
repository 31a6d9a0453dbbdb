"""Reading a definition into a grid: a crontab expression or a `schedule` library job.

`grid_of` refuses, with a `ValueError` that says what to write instead,
anything cron would compute differently from what it says; `Schedule`
puts the schedule's name in front.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import schedule as schedule_library

from app.cron.crontab import CronGrid
from app.cron.occurrences import WEEKDAYS, AnyGrid, Grid

_HOUR = timedelta(hours=1)


def grid_of(definition: Any, timezone: str) -> AnyGrid:
    """Read a crontab expression or a `schedule` library definition into a grid in `timezone`."""
    if isinstance(definition, str):
        return CronGrid(definition, zone_of(timezone))
    if not isinstance(definition, schedule_library.Job):
        raise TypeError(
            "expected a crontab expression or a schedule.every(...) definition, "
            f"got {definition!r:.100}"
        )
    if definition.unit is None:
        raise ValueError("the definition has no unit: e.g. schedule.every(5).minutes")
    if definition.latest is not None or definition.cancel_after is not None:
        raise ValueError("randomised (.to) and ending (.until) schedules have no fixed grid")
    if definition.at_time_zone is not None:
        raise ValueError(AT_WITH_ZONE)
    zone = zone_of(timezone)
    weekday = None if definition.start_day is None else WEEKDAYS.index(definition.start_day)
    grid = Grid(definition.unit, definition.interval, definition.at_time, weekday, zone)
    if grid.unit not in ("minutes", "hours"):
        return grid
    return Grid(grid.unit, grid.interval, grid.at, None, zone, _shift(grid))


AT_WITH_ZONE = (
    ".at(time, timezone) is not supported (the schedule library needs pytz for it, "
    "and its meaning for hours and minutes differs from a wall clock): write .at(time) "
    'and give the zone as Schedule(..., timezone="Europe/Berlin")'
)


def zone_of(timezone: object) -> ZoneInfo:
    """The `ZoneInfo` for an IANA name, or a `ValueError` that says what was wrong."""
    if not isinstance(timezone, str) or not timezone:
        raise ValueError(f"timezone must be an IANA name such as 'Europe/Berlin', got {timezone!r}")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {timezone[:100]!r}") from None


def _shift(grid: Grid) -> timedelta:
    """The part of the zone's UTC offset that moves a minute or hour grid's local times.

    Whole hours are left alone (so a DST change of one hour changes nothing,
    and `every(2).hours` keeps counting from the epoch); the minutes of an
    offset like +05:30 are what keep an hourly :00 on the local :00. A zone
    whose minutes change with the seasons (Australia/Lord_Howe, +10:30 and
    +11:00) cannot keep such a grid, and is refused unless it makes no
    difference to it.
    """
    year = datetime.now(UTC).year
    offsets = {grid.zone.utcoffset(datetime(year, month, 1)) or timedelta(0) for month in (1, 7)}
    shifts = {(offset % _HOUR) % grid.step for offset in offsets}
    if len(shifts) > 1:
        raise ValueError(
            f"{grid.zone.key} moves its clocks by part of an hour, so every "
            f"{grid.interval} {grid.unit} cannot keep to its local minutes: "
            "use a daily schedule, a crontab expression or timezone='UTC'"
        )
    return shifts.pop()
