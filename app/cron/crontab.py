"""Crontab expressions ("30 6 * * 1-5") on the same footing as `schedule` definitions.

`cronsim` parses the five fields and walks the matching local wall-clock
times; it is given naive datetimes, so it knows nothing of daylight saving.
Which real moments those local times stand for is decided here, by the rule
`app.cron.occurrences` applies to daily schedules, and the same split
between wall-clock and elapsed time that Debian's cron makes:

* An expression whose **hour field is fixed** (`30 6 * * *`, `0 8-18/2 * * *`)
  is wall-clock time, like a daily schedule: a local time that does not
  exist (spring forward) runs once at the same time plus the gap, read with
  the offset before the change (02:30 runs at 03:30); a local time that
  happens twice (fall back) runs once, at the first (PEP 495 `fold=0`). A
  time moved onto another occurrence merges with it.
* An expression whose **hour field starts with `*`** (`*/15 * * * *`,
  `5 * * * *`) runs in every real hour at those local minutes: both passes
  of a repeated hour, and nothing for local times that never happened.

Every answer is computed from the expression and the question alone, so
every process agrees, as with `occurrences.Grid`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from itertools import takewhile
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

#: The common macros, written out (cronsim reads the five fields only).
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: Long enough for any real expression; bounds the parser's work on hostile input.
MAX_LENGTH = 200
_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
#: The longest gap `count` counts in full (see there).
COUNT_SPAN = timedelta(days=36_525)


@dataclass(frozen=True)
class CronGrid:
    """The occurrences of a five-field crontab `expression` on `zone`'s wall clock."""

    expression: str
    zone: ZoneInfo = ZoneInfo("UTC")

    def __post_init__(self) -> None:
        if len(self.expression) > MAX_LENGTH:
            raise ValueError(f"a crontab expression has at most {MAX_LENGTH} characters")
        words = MACROS.get(self.expression.strip(), self.expression).split()
        if len(words) > 5:  # cronsim would read a sixth as seconds: not crontab's
            raise ValueError(
                f"a crontab expression has five fields (minute hour day month weekday), "
                f"got {len(words)}: {self.expression!r}"
            )
        object.__setattr__(self, "expression", " ".join(words))
        try:
            next(CronSim(self.expression, datetime(2000, 1, 1)))
        except CronSimError as error:
            raise ValueError(f"not a crontab expression ({error}): {self.expression!r}") from None
        except StopIteration:
            raise ValueError(f"the crontab expression never matches: {self.expression!r}") from None

    @property
    def elapsed(self) -> bool:
        """Whether the hour field is a wildcard: every real hour, as explained above."""
        return self.expression.split()[1].startswith("*")

    @property
    def fingerprint(self) -> str:
        return f"cron {self.expression} ({self.zone.key})"

    def latest(self, moment: datetime) -> datetime:
        """The newest occurrence at or before `moment`, in UTC."""
        moment = _utc(moment)
        best: datetime | None = None
        # Walk back past `moment` by the slack: near a DST change, a later
        # local time may stand for an earlier moment. Stop once no earlier
        # local time can beat the best found.
        for local in self._walk(moment, reverse=True):
            if best is not None and local < self._local(best) - self._slack(best):
                break
            for instant in self._instants(local):
                if instant <= moment and (best is None or instant > best):
                    best = instant
        if best is None:
            raise ValueError(f"{self.expression!r} has no occurrence before {moment}")
        return best

    def following(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment`, in UTC."""
        moment = _utc(moment)
        best: datetime | None = None
        for local in self._walk(moment, reverse=False):
            if best is not None and local > self._local(best) + self._slack(best):
                break
            for instant in self._instants(local):
                if instant > moment and (best is None or instant < best):
                    best = instant
        if best is None:
            raise ValueError(f"{self.expression!r} has no occurrence after {moment}")
        return best

    def count(self, after: datetime, until: datetime) -> int:
        """How many occurrences fall in (after, until].

        One step per matching day, not per occurrence: a minutely expression
        over three years of downtime is 1,100 steps, not 1.6 million (which
        outlasted the step's time bound). A day whose UTC offset stays put
        holds each (hour, minute) pair of the expression exactly once; a day
        with a change, and the partial days at both ends, are walked. A gap
        of more than `COUNT_SPAN` (a state row left from another age) counts
        only its last `COUNT_SPAN`.
        """
        after, until = _utc(after), _utc(until)
        after = max(after, until - COUNT_SPAN)
        if until - after <= 3 * _DAY:
            return self._walk_count(after, until)
        first_day = self._local(after).date() + _DAY
        last_day = self._local(until).date()
        total = self._walk_count(after, self._midnight(first_day) - _TICK)
        total += self._walk_count(self._midnight(last_day) - _TICK, until)
        start = datetime.combine(first_day, time()) - _TICK
        for local in CronSim(self._days_expression, start):
            day = local.date()
            if day >= last_day:
                break
            begins, ends = self._midnight(day), self._midnight(day + _DAY)
            if self._steady(begins, ends):
                total += self._per_day
            else:
                total += self._walk_count(begins - _TICK, ends - _TICK)
        return total

    @cached_property
    def _days_expression(self) -> str:
        """The expression at 00:00 of each day it matches (its day fields as written)."""
        return " ".join(["0", "0", *self.expression.split()[2:]])

    @cached_property
    def _per_day(self) -> int:
        """How many (hour, minute) pairs a matching day holds."""
        minute, hour = self.expression.split()[:2]
        times = CronSim(f"{minute} {hour} * * *", datetime(2000, 1, 1) - _TICK)
        return sum(1 for _ in takewhile(lambda t: t.day == 1, times))

    def _midnight(self, day: date) -> datetime:
        """Local midnight of `day`, in UTC (where it never happened, the moment after)."""
        return datetime.combine(day, time(), self.zone).astimezone(UTC)

    def _steady(self, begins: datetime, ends: datetime) -> bool:
        """Whether the UTC offset holds from a day before `begins` to a day after `ends`:
        no local time of the days around can then land between them."""
        offsets = {self._offset(m) for m in (begins - _DAY, begins, ends - _TICK, ends + _DAY)}
        return len(offsets) == 1

    def _walk_count(self, after: datetime, until: datetime) -> int:
        """`count` the slow way: one step per occurrence, for short spans."""
        if until <= after:
            return 0
        end = self._local(until) + self._slack(until)
        found: set[datetime] = set()
        for local in self._walk(after, reverse=False):
            if local > end:
                break
            found.update(r for r in self._instants(local) if after < r <= until)
        return len(found)

    def _walk(self, moment: datetime, *, reverse: bool) -> Iterator[datetime]:
        """Matching local times, from just beyond `moment` (by the slack) onwards or back."""
        slack = self._slack(moment) + _TICK
        start = self._local(moment) + (slack if reverse else -slack)
        try:
            yield from CronSim(self.expression, start, reverse=reverse)
        except StopIteration:  # cronsim stops after 50 years without a match
            return

    def _instants(self, local: datetime) -> list[datetime]:
        """The real moments (UTC) that local wall-clock time `local` stands for here."""
        first = local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first < second:  # happens twice (fall back)
            return [first, second] if self.elapsed else [first]
        return [] if self.elapsed else [first]  # never happens (spring forward)

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _slack(self, moment: datetime) -> timedelta:
        """How far local times near `moment` may stray from its own offset (a DST change)."""
        offsets = [self._offset(moment + delta) for delta in (-_DAY, timedelta(0), _DAY)]
        return max(offsets) - min(offsets) + timedelta(minutes=1)

    def _offset(self, moment: datetime) -> timedelta:
        return moment.astimezone(self.zone).utcoffset() or timedelta(0)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous: pass timezone-aware ones")
    return moment.astimezone(UTC)
