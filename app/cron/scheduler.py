"""The cron loop: sleep until a schedule falls due, then `catch_up` in one transaction.

The database's `now()` is the one clock. Between transactions the loop
estimates it from the last reading plus the local monotonic clock, only to
know how long to sleep; what is due is always decided with `now()` read
inside the transaction. Sleeps are at most `MAX_SLEEP`, so the loop notices
a stop within a second and every-second schedules stay on time.

Several cron processes may run this loop against one database: each
schedule's step takes its `cron_state` row lock (peers skip it), so none is
a single point of failure and no occurrence is enqueued twice. Each step's
transaction is bounded (`firing.STEP_TIMEOUTS`), so a process frozen inside
one loses its lock to the server within seconds.

At start, and hourly after, the loop tidies the state of schedules removed
from code (`orphans`): marked at start, pruned after the retention.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, exc
from sqlalchemy.orm import Session

from app import logs
from app.config import Settings
from app.cron import occurrences, orphans, sql
from app.cron.firing import bound, catch_up
from app.cron.liveness import Liveness
from app.cron.schedules import Schedule
from app.db import describe, is_connection_fault

log = logging.getLogger(__name__)

MAX_SLEEP = 1.0
#: After a peer held a schedule, look again this soon: it may have died.
BUSY_RETRY = timedelta(seconds=0.25)
#: Wake a moment after an occurrence, so the database clock has surely reached it.
LAG = timedelta(milliseconds=5)
MAX_BACKOFF = 10.0
#: Seconds between prunes of removed schedules' state.
TIDY_EVERY = 3600.0
#: A schedule whose step failed (not for want of the database) is tried again this late.
RETRY_REFUSED = timedelta(minutes=1)
#: ... and this soon when its time bound ended it.
TIMED_OUT_RETRY = timedelta(seconds=1)
#: A last run recorded further ahead of the database clock than this is reported:
#: a peer's step can leave it a moment ahead of a transaction begun just before.
AHEAD = timedelta(minutes=1)


class Scheduler:
    """Enqueues `schedules` on time until `stop()`; `run` returns the exit code."""

    def __init__(self, engine: Engine, settings: Settings, schedules: Sequence[Schedule]) -> None:
        self.engine = engine
        self.settings = settings
        self.schedules = list(schedules)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stopping = threading.Event()
        self._liveness = Liveness(engine, settings, self.id, stopping=self.stopping)
        self._clock: tuple[datetime, float] | None = None
        self._next: dict[str, datetime] = {}
        self._failures = 0
        #: The database clock at this process's first step: see `catch_up(since=)`.
        self._since: datetime | None = None
        self._tidy_at = 0.0
        self._marked = False
        #: Schedules whose last run was found ahead of the clock, and reported.
        self._ahead: set[str] = set()

    def run(self) -> int:
        """Fire due schedules until stopped; a lost database is waited out, never fatal."""
        self._liveness.start()
        names = ", ".join(s.name for s in self.schedules) or "none"
        log.info("cron %s started: schedules %s", self.id, names)
        while not self.stopping.is_set():
            if self._fire_due():
                self._failures = 0
                self.stopping.wait(self._sleep_for())
            else:
                self._failures += 1
                self.stopping.wait(min(MAX_BACKOFF, 0.5 * 2 ** (self._failures - 1)))
        self._liveness.join(timeout=10)
        log.info("cron %s stopped", self.id)
        return 2 if self._liveness.problem else 0

    def stop(self) -> None:
        self.stopping.set()

    def _fire_due(self) -> bool:
        """Step every schedule that is due by the estimated clock; False if the database failed."""
        try:
            self._tidy()
        except exc.SQLAlchemyError as error:
            if is_connection_fault(error):
                log.warning("cron %s: %s; retrying with backoff", self.id, _failure(error))
                return False
            # Tidying is housekeeping: a refusal must not hold up any schedule.
            log.error("cron %s: tidying refused (%s); trying again in an hour", self.id, error)
            self._tidy_at = time.monotonic() + TIDY_EVERY
        for schedule in self.schedules:
            if self.stopping.is_set():
                break
            due_at = self._next.get(schedule.name)
            if due_at is not None and due_at > self._now():
                continue
            try:
                self._fire(schedule)
            except exc.SQLAlchemyError as error:
                if is_connection_fault(error):
                    log.warning(
                        "schedule %s: %s; retrying with backoff", schedule.name, _failure(error)
                    )
                    return False
                # Refused for this schedule alone: the others go on. Ended by its
                # time bound (a loaded server), it is tried again soon; refused
                # (a row, a rule of the database's), in a minute.
                if _timed_out(error):
                    log.warning("schedule %s: %s; trying again", schedule.name, _failure(error))
                    self._next[schedule.name] = self._now() + TIMED_OUT_RETRY
                    continue
                log.error(
                    "schedule %s: step refused (%s); trying again in a minute",
                    schedule.name,
                    describe(error),
                )
                self._next[schedule.name] = self._now() + RETRY_REFUSED
            except Exception:
                log.exception("schedule %s: step failed; trying again in a minute", schedule.name)
                self._next[schedule.name] = self._now() + RETRY_REFUSED
        return True

    def _tidy(self) -> None:
        """Mark removed schedules (at the first run only) and prune old ones, when due."""
        if time.monotonic() < self._tidy_at:
            return
        names = [schedule.name for schedule in self.schedules]
        with self._transaction() as session:
            if not self._marked:
                orphans.mark_removed(session, names)
            orphans.prune(session, names, self.settings.cron_orphan_retention_days)
        self._marked = True
        self._tidy_at = time.monotonic() + TIDY_EVERY

    def _fire(self, schedule: Schedule) -> None:
        with logs.bound(cron=schedule.name), self._transaction() as session:
            now = self._read_clock(session)
            step = catch_up(session, schedule, now, since=self._since)
        if step.busy:
            self._next[schedule.name] = now + BUSY_RETRY
            return
        self._next[schedule.name] = occurrences.following(schedule.grid, now) + LAG
        self._report_ahead(schedule.name, step.last_run_at, now)

    def _report_ahead(self, name: str, last_run_at: datetime | None, now: datetime) -> None:
        """Say once why a schedule stays silent: its last run is recorded in the future.

        The occurrences until then count as run, since they may have been
        (enqueueing them again could run them twice); a clock set back or
        an edited `cron_state` row would otherwise silence it without a word.
        """
        if last_run_at is None or last_run_at - now <= AHEAD:
            self._ahead.discard(name)
        elif name not in self._ahead:
            self._ahead.add(name)
            log.warning(
                "schedule %s: last run recorded at %s, %s ahead of the database clock "
                "(a clock set back, or an edited cron_state row); nothing is enqueued "
                "until then",
                name,
                last_run_at.isoformat(),
                timedelta(seconds=round((last_run_at - now).total_seconds())),
            )

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A bounded transaction (see `firing.bound`) that reads the clock first."""
        with Session(self.engine) as session, session.begin():
            bound(session)
            self._since = self._since or self._read_clock(session)
            yield session

    def _read_clock(self, session: Session) -> datetime:
        now: datetime = session.execute(sql.NOW).scalar_one()
        self._clock = (now, time.monotonic())
        return now

    def _now(self) -> datetime:
        """The database clock, estimated from its last reading."""
        if self._clock is None:
            return datetime.min.replace(tzinfo=occurrences.EPOCH.tzinfo)
        read, at = self._clock
        return read + timedelta(seconds=time.monotonic() - at)

    def _sleep_for(self) -> float:
        if not self._next:
            return MAX_SLEEP
        wait = (min(self._next.values()) - self._now()).total_seconds()
        return min(MAX_SLEEP, max(0.0, wait))


#: What a step's time bound (`firing.STEP_TIMEOUTS`) ends it with.
_TIME_BOUND = ("LockNotAvailable", "QueryCanceled", "IdleInTransactionSessionTimeout")


def _timed_out(error: exc.SQLAlchemyError) -> bool:
    return type(getattr(error, "orig", error)).__name__ in _TIME_BOUND


def _failure(error: exc.SQLAlchemyError) -> str:
    """Say what went wrong in a step, in a few words, for the log."""
    cause = type(getattr(error, "orig", error)).__name__
    if cause in _TIME_BOUND:
        return f"step ended by its time bound ({cause})"
    return f"database unavailable ({cause})"
