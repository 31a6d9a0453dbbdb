"""When a schedule falls due: pure functions over a fixed grid, no clock of their own.

The `schedule` library counts from process start with the local clock, so
two processes would disagree on when "every 5 minutes" falls, and it cannot
list past occurrences. Here a definition is read once into a `Grid`, and
every question ("the occurrences in (after, until]") is answered by
arithmetic on that grid, whoever asks and whenever.

Two kinds of grid (and a third, crontab expressions, in `app.cron.crontab`,
answering the same questions through the functions below):

* **Elapsed** (seconds, minutes, hours): every `step` of real time, counted
  from the Unix epoch (midnight UTC) plus the `at` offset. `every(5).minutes`
  falls on :00, :05, ...; `every().hour.at(":30")` on every half past. Real
  time knows no daylight saving, so these never double or skip. In a zone
  whose UTC offset is not whole hours (Asia/Kolkata, +05:30), minute and
  hour grids are moved by the offset's minutes (`shift`), so an hourly
  schedule at :00 falls on that zone's :00.
* **Wall clock** (days, weeks): the `at` time (default 00:00) on the local
  dates of the schedule's timezone. Each such date has exactly one
  occurrence, resolved as PEP 495 `fold=0`: on the spring-forward day a
  daily 02:30 that does not exist runs once, at 03:30 (02:30 read with the
  offset before the change); on the fall-back day whose 02:30 happens twice
  it runs once, at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.cron.crontab import CronGrid

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: 1970-01-05, the first Monday on or after the epoch: week grids count from it.
FIRST_MONDAY = date(1970, 1, 5)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}
#: The longest step a grid may have: far enough for any schedule, near enough
#: that every date computed from it stays within the calendar.
MAX_STEP = timedelta(days=36_525)


@dataclass(frozen=True)
class Grid:
    """A schedule's occurrences: every `interval` `unit`, at `at`, on `weekday`, in `zone`.

    `shift` moves an elapsed grid back by part of `zone`'s UTC offset (see the
    module docstring); `definitions.grid_of` works it out from the zone.
    """

    unit: str
    interval: int = 1
    at: time | None = None
    weekday: int | None = None
    zone: ZoneInfo = ZoneInfo("UTC")
    shift: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.unit not in (*_UNIT_SECONDS, "days", "weeks"):
            raise ValueError(f"unknown unit {self.unit!r}")
        # bool is an int, and a float interval would be cut to whole days.
        if type(self.interval) is not int or self.interval < 1:
            raise ValueError(
                f"the interval must be a whole number of at least 1, got {self.interval!r}"
            )
        if self.interval * self._unit_seconds > MAX_STEP.total_seconds():
            raise ValueError(f"the interval is too long: at most {MAX_STEP.days} days")
        if self.weekday is not None and (self.unit != "weeks" or self.interval != 1):
            raise ValueError("a weekday needs a weekly schedule of interval 1")

    @property
    def elapsed(self) -> bool:
        return self.unit in _UNIT_SECONDS

    @property
    def _unit_seconds(self) -> int:
        return _UNIT_SECONDS.get(self.unit) or 86_400 * (7 if self.unit == "weeks" else 1)

    @property
    def step(self) -> timedelta:
        """Grid spacing: real time for elapsed grids, calendar days for wall-clock grids."""
        return timedelta(seconds=self.interval * self._unit_seconds)

    @property
    def offset(self) -> timedelta:
        """For elapsed grids: where in each step the occurrence falls (from `at` and `shift`)."""
        at = self.at or time()
        return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second) - self.shift

    @property
    def fingerprint(self) -> str:
        """The definition in words, stable across releases: what cron's state was written for.

        Two grids with the same fingerprint have the same occurrences; a
        change of fingerprint is a redefinition (see `app.cron.firing`).
        """
        day = "" if self.weekday is None else f" on {WEEKDAYS[self.weekday]}"
        at = "" if self.at is None else f" at {self.at.isoformat()}"
        return f"every {self.interval} {self.unit}{day}{at} ({self.zone.key})"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous: pass timezone-aware ones")
    return moment.astimezone(UTC)


# -- wall-clock grids: one occurrence per qualifying local date ---------------


def _first_date(grid: Grid) -> date:
    """A date on the grid: every other qualifying date is a whole `step` from it."""
    if grid.unit == "days":
        return date(1970, 1, 1)
    return FIRST_MONDAY + timedelta(days=grid.weekday or 0)


def _on_date(grid: Grid, day: date) -> datetime:
    """The occurrence on local date `day`, in UTC (fold=0: see the module docstring)."""
    local = datetime.combine(day, grid.at or time(), tzinfo=grid.zone)
    return local.astimezone(UTC)


def _date_at_or_before(grid: Grid, day: date) -> date:
    days = grid.step.days
    return day - timedelta(days=(day - _first_date(grid)).days % days)


def _wall_latest(grid: Grid, moment: datetime) -> datetime:
    day = _date_at_or_before(grid, moment.astimezone(grid.zone).date() + timedelta(days=1))
    while (occurrence := _on_date(grid, day)) > moment:
        day -= grid.step
    return occurrence


# -- the questions --------------------------------------------------------------


#: Every kind of grid a schedule may have.
AnyGrid = Grid | CronGrid


def latest(grid: AnyGrid, moment: datetime) -> datetime:
    """The newest occurrence at or before `moment`, in UTC."""
    if isinstance(grid, CronGrid):
        return grid.latest(moment)
    moment = _utc(moment)
    if grid.elapsed:
        steps = (moment - EPOCH - grid.offset) // grid.step
        return EPOCH + grid.offset + steps * grid.step
    return _wall_latest(grid, moment)


def following(grid: AnyGrid, moment: datetime) -> datetime:
    """The first occurrence strictly after `moment`, in UTC."""
    if isinstance(grid, CronGrid):
        return grid.following(moment)
    moment = _utc(moment)
    if grid.elapsed:
        return latest(grid, moment) + grid.step
    day = latest(grid, moment).astimezone(grid.zone).date() + grid.step
    return _on_date(grid, day)


def count(grid: AnyGrid, after: datetime, until: datetime) -> int:
    """How many occurrences fall in the half-open interval (after, until]."""
    if isinstance(grid, CronGrid):
        return grid.count(after, until)
    first, last = latest(grid, after), latest(grid, until)
    if last <= first:
        return 0
    if grid.elapsed:
        return (last - first) // grid.step
    days = (last.astimezone(grid.zone).date() - first.astimezone(grid.zone).date()).days
    return days // grid.step.days


def newest(grid: AnyGrid, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The newest `limit` occurrences in (after, until], oldest first.

    Walks back from `until`, so a long gap in an every-second schedule costs
    `limit` steps, not one per missed second.
    """
    found: list[datetime] = []
    moment = latest(grid, until)
    after = _utc(after)
    while moment > after and len(found) < limit:
        found.append(moment)
        moment = latest(grid, moment - timedelta(microseconds=1))
    return found[::-1]


def between(grid: AnyGrid, after: datetime, until: datetime) -> list[datetime]:
    """Every occurrence in (after, until], oldest first (for short intervals)."""
    return newest(grid, after, until, count(grid, after, until))
