"""Schedules as data: what to enqueue, when, and what to do about runs missed.

A `Schedule` is defined in code, in `app/cron/builtin.py` for the app's own
or in any module listed in JOB_MODULES, and registered with `add`. The
`schedule` library supplies the definition (`schedule.every(5).minutes`,
`schedule.every().monday.at("09:30")`); it is only read, never run: see
`app.cron.occurrences` for why and for how times are computed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import schedule as schedule_library

from app.cron.occurrences import WEEKDAYS, Grid
from app.jobs import load_job_modules, registry

#: `latest`: after a gap, enqueue the most recent missed occurrence once.
#: `all`: enqueue every missed occurrence, the newest `max_catch_up` of them.
#: `skip`: enqueue none of them; only occurrences that are on time run.
Policy = Literal["latest", "all", "skip"]
POLICIES: tuple[Policy, ...] = ("latest", "all", "skip")

#: The app's own schedules, always loaded by every process that loads schedules.
APP_SCHEDULE_MODULES = ("app.cron.builtin",)


def grid_of(definition: Any, timezone: str) -> Grid:
    """Read a `schedule` library job definition into a `Grid` in `timezone`."""
    if not isinstance(definition, schedule_library.Job):
        raise TypeError(f"expected a schedule.every(...) definition, got {definition!r}")
    if definition.unit is None:
        raise ValueError("the definition has no unit: e.g. schedule.every(5).minutes")
    if definition.latest is not None or definition.cancel_after is not None:
        raise ValueError("randomised (.to) and ending (.until) schedules have no fixed grid")
    if definition.at_time_zone is not None:
        raise ValueError("give the timezone to Schedule(timezone=...), not to .at()")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {timezone!r}") from None
    weekday = None if definition.start_day is None else WEEKDAYS.index(definition.start_day)
    return Grid(definition.unit, definition.interval, definition.at_time, weekday, zone)


@dataclass(frozen=True, eq=False)
class Schedule:
    """Enqueue job `job` with `payload` on every occurrence of `every`.

    `name` is stable: it keys the persisted state, so renaming a schedule
    starts it afresh. Each job carries the occurrence it stands for
    (`JobContext.scheduled_for`). With `skip_if_running`, an occurrence is
    skipped while the previous job of this schedule is still queued or running.
    """

    name: str
    every: Any  # a schedule.Job, e.g. schedule.every().day.at("06:00")
    job: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    missed: Policy = "latest"
    timezone: str = "UTC"
    skip_if_running: bool = False
    #: With `missed="all"`: at most this many missed occurrences are enqueued.
    max_catch_up: int = 24
    grid: Grid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a schedule needs a non-empty name")
        if self.missed not in POLICIES:
            raise ValueError(f"missed must be one of {', '.join(POLICIES)}, got {self.missed!r}")
        if self.max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        object.__setattr__(self, "grid", grid_of(self.every, self.timezone))

    def describe(self) -> str:
        """Say when it runs, for people: 'every 5 minutes', 'every monday at 09:30 (UTC)'."""
        grid = self.grid
        if grid.weekday is not None:
            when = f"every {WEEKDAYS[grid.weekday]}"
        else:
            unit = grid.unit[:-1] if grid.interval == 1 else grid.unit
            when = f"every {unit}" if grid.interval == 1 else f"every {grid.interval} {unit}"
        if grid.at is not None:
            when += f" at {_clock_face(grid)}"
        return when if grid.elapsed else f"{when} ({self.timezone})"


def _clock_face(grid: Grid) -> str:
    """The `at` time as it was written: "06:00" for days, ":30" for hours, ":15" for minutes."""
    at = grid.at
    assert at is not None
    seconds = f":{at.second:02}" if at.second else ""
    if grid.unit == "minutes":
        return f":{at.second:02}"
    if grid.unit == "hours":
        return f":{at.minute:02}{seconds}"
    return f"{at.hour:02}:{at.minute:02}{seconds}"


class Schedules:
    """Schedule names to `Schedule`s; one per process, filled at import time."""

    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}

    def add(self, schedule: Schedule) -> Schedule:
        """Register `schedule`; a second schedule under the same name is an error."""
        existing = self._schedules.get(schedule.name)
        if existing is not None and existing is not schedule:
            raise ValueError(f"schedule name {schedule.name!r} is already registered")
        self._schedules[schedule.name] = schedule
        return schedule

    def get(self, name: str) -> Schedule:
        try:
            return self._schedules[name]
        except KeyError:
            known = ", ".join(sorted(self._schedules)) or "none"
            raise KeyError(f"no schedule is named {name!r} (known: {known})") from None

    def all(self) -> list[Schedule]:
        return [self._schedules[name] for name in sorted(self._schedules)]

    def __contains__(self, name: object) -> bool:
        return name in self._schedules


schedules = Schedules()
add = schedules.add


def load_schedules(extra: Iterable[str] = ()) -> list[Schedule]:
    """Import job and schedule modules, check every schedule's message, return them all.

    A schedule naming an unknown job or a payload that does not fit fails here,
    at start, rather than at 3 a.m. when it first falls due.
    """
    modules = tuple(extra)
    load_job_modules(modules)
    for module in (*APP_SCHEDULE_MODULES, *modules):
        importlib.import_module(module)
    for schedule in schedules.all():
        registry.get(schedule.job).check_payload(dict(schedule.payload))
    return schedules.all()
