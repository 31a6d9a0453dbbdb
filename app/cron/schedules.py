"""Schedules as data: what to enqueue, when, and what to do about runs missed.

A `Schedule` is defined in code, in `app/cron/builtin.py` for the app's own
or in any module listed in JOB_MODULES, and registered with `add`. The
definition is either the `schedule` library's (`schedule.every(5).minutes`,
`schedule.every().monday.at("09:30")`), only read, never run (see
`app.cron.occurrences` for why and for how times are computed), or a
crontab expression (`"30 6 * * 1-5"`, see `app.cron.crontab`).
"""

from __future__ import annotations

import importlib
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import schedule as schedule_library

from app.cron.crontab import CronGrid
from app.cron.definitions import AT_WITH_ZONE, grid_of
from app.cron.occurrences import WEEKDAYS, AnyGrid, Grid
from app.jobs import load_job_modules, registry
from app.jobs.errors import InvalidPayload, UnknownJob

#: `latest`: after a gap, enqueue the most recent missed occurrence once.
#: `all`: enqueue every missed occurrence, the newest `max_catch_up` of them.
#: `skip`: enqueue none of them; only occurrences that are on time run.
Policy = Literal["latest", "all", "skip"]
POLICIES: tuple[Policy, ...] = ("latest", "all", "skip")
#: `all` after a long gap enqueues at most this many jobs in one transaction.
MAX_CATCH_UP = 1000

#: The app's own schedules, always loaded by every process that loads schedules.
APP_SCHEDULE_MODULES = ("app.cron.builtin",)

#: A name goes into URLs, log lines and the command line: printable, no spaces or slashes.
_NAME = re.compile(r"[^\s/\x00-\x1f\x7f]{1,200}")


class ScheduleError(ValueError):
    """A schedule cannot run as written; the message names it and says what to change."""


@dataclass(frozen=True, eq=False)
class Schedule:
    """Enqueue job `job` with `payload` on every occurrence of `every`.

    `name` is stable: it keys the persisted state, so renaming a schedule
    starts it afresh. Each job carries the occurrence it stands for
    (`JobContext.scheduled_for`). With `skip_if_running`, an occurrence is
    skipped while the previous job of this schedule is still queued or running.
    Anything that cannot run as written raises `ScheduleError` here, at
    definition, with the schedule's name in the message.
    """

    name: str
    #: A schedule.Job (`schedule.every().day.at("06:00")`) or a crontab
    #: expression (`"0 6 * * *"`), read in `timezone`.
    every: Any
    job: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    missed: Policy = "latest"
    timezone: str = "UTC"
    skip_if_running: bool = False
    #: With `missed="all"`: at most this many missed occurrences are enqueued.
    max_catch_up: int = 24
    grid: AnyGrid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ScheduleError(
                "a schedule needs a name of 1 to 200 printable characters without spaces "
                f"or slashes, got {self.name!r:.100}"
            )
        try:
            self._check()
            object.__setattr__(self, "grid", grid_of(self.every, self.timezone))
        except (TypeError, ValueError) as error:
            raise ScheduleError(f"schedule {self.name!r}: {error}") from None

    def _check(self) -> None:
        """Refuse every option whose type or value would be misread later."""
        if not isinstance(self.job, str) or not self.job:
            raise ValueError(f"job must be a job name, got {self.job!r:.100}")
        if not isinstance(self.payload, Mapping):
            raise ValueError(f"payload must be a mapping, got {type(self.payload).__name__}")
        if not isinstance(self.missed, str) or self.missed not in POLICIES:
            raise ValueError(
                f"missed must be one of {', '.join(POLICIES)}, got {self.missed!r:.100}"
            )
        if type(self.skip_if_running) is not bool:
            raise ValueError(
                f"skip_if_running must be True or False, got {self.skip_if_running!r:.100}"
            )
        most = self.max_catch_up
        if type(most) is not int or not 1 <= most <= MAX_CATCH_UP:
            raise ValueError(
                f"max_catch_up must be a whole number from 1 to {MAX_CATCH_UP}, got {most!r:.100}"
            )

    @property
    def fingerprint(self) -> str:
        """What cron's state for this schedule is written for; see `Grid.fingerprint`."""
        return self.grid.fingerprint

    def describe(self) -> str:
        """Say when it runs, for people: 'every 5 minutes', 'every monday at 09:30 (UTC)'."""
        grid = self.grid
        if isinstance(grid, CronGrid):
            return f"cron {grid.expression} ({self.timezone})"
        if grid.weekday is not None:
            when = f"every {WEEKDAYS[grid.weekday]}"
        else:
            unit = grid.unit[:-1] if grid.interval == 1 else grid.unit
            when = f"every {unit}" if grid.interval == 1 else f"every {grid.interval} {unit}"
        if grid.at is not None:
            when += f" at {_clock_face(grid)}"
        if grid.unit == "seconds" or (grid.elapsed and self.timezone == "UTC"):
            return when
        return f"{when} ({self.timezone})"


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
    at start, rather than at 3 a.m. when it first falls due. Every such
    failure is a `ScheduleError` that names the schedule (or, for a
    definition that failed inside the `schedule` library, the line).
    """
    modules = tuple(extra)
    try:
        load_job_modules(modules)
        for module in (*APP_SCHEDULE_MODULES, *modules):
            importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise _at_with_zone(error) or error from None
    for schedule in schedules.all():
        try:
            registry.get(schedule.job).check_payload(dict(schedule.payload))
        except (UnknownJob, InvalidPayload) as error:
            raise ScheduleError(f"schedule {schedule.name!r}: {error}") from None
    return schedules.all()


def _at_with_zone(error: ModuleNotFoundError) -> ScheduleError | None:
    """`.at("06:00", "Europe/Berlin")` dies importing pytz inside `schedule`: say where, and why.

    The schedule has no name yet at that point, so the message names the line.
    """
    frames = traceback.extract_tb(error.__traceback__)
    inside = [n for n, frame in enumerate(frames) if frame.filename == schedule_library.__file__]
    if error.name != "pytz" or not inside or inside[0] == 0:
        return None
    caller = frames[inside[0] - 1]
    return ScheduleError(f"{caller.filename}, line {caller.lineno}: {AT_WITH_ZONE}")
