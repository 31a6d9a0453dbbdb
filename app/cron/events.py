"""What cron writes into `cron_events`, and logs: gaps, overlaps and redefinitions.

Each record is written in the transaction of the step it describes, so the
dashboard's account and what happened can never disagree.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.cron import occurrences, sql
from app.cron.schedules import Schedule

log = logging.getLogger(__name__)

#: An occurrence handled within this long of its time is on time, not missed.
ON_TIME = timedelta(seconds=60)
OVERLAP = "the previous occurrence is still queued or running"
#: The most occurrences one event records (its column is an int4).
MAX_COUNT = 2**31 - 1


def paused(by: str | None) -> str:
    """The reason recorded for occurrences skipped while paused."""
    return f"paused by {by}" if by else "paused"


def _merges(reason: str) -> bool:
    """Skips that repeat occurrence after occurrence extend one event, not one per skip."""
    return reason == OVERLAP or reason.startswith("paused")


def missed(
    session: Session,
    schedule: Schedule,
    last_run_at: datetime,
    now: datetime,
    enqueued: list[datetime],
    skipped: int,
    reason: str,
) -> None:
    """Record what a step skipped and what it caught up late, for the dashboard."""
    grid = schedule.grid
    if skipped:
        # The skipped are always the oldest due, the enqueued the newest.
        first = occurrences.following(grid, last_run_at)
        last = occurrences.latest(grid, now)
        if enqueued:
            last = occurrences.latest(grid, enqueued[0] - timedelta(microseconds=1))
        extended = _event(session, schedule.name, "skipped", skipped, first, last, reason)
        # A paused every-second schedule skips every second: one line per event,
        # not one per skip (the event itself counts them all).
        log.log(
            logging.DEBUG if extended else logging.WARNING,
            "schedule %s: skipped %d occurrence(s) from %s to %s: %s",
            schedule.name,
            skipped,
            first.isoformat(),
            last.isoformat(),
            reason,
        )
    late = [o for o in enqueued if now - o > ON_TIME]
    if late:
        _event(session, schedule.name, "caught_up", len(late), late[0], late[-1], reason)
        log.warning(
            "schedule %s: caught up %d late occurrence(s) from %s to %s",
            schedule.name,
            len(late),
            late[0].isoformat(),
            late[-1].isoformat(),
        )


def redefined(
    session: Session, schedule: Schedule, old_last_run_at: datetime, start: datetime, reason: str
) -> None:
    """Record that `schedule` starts afresh at `start`, owing nothing for the past."""
    _event(session, schedule.name, "redefined", 0, old_last_run_at, start, reason)
    log.warning(
        "schedule %s: %s; starts from now, next occurrence %s",
        schedule.name,
        reason,
        occurrences.following(schedule.grid, start).isoformat(),
    )


def _event(
    session: Session,
    name: str,
    kind: str,
    count: int,
    first: datetime,
    last: datetime,
    reason: str,
) -> bool:
    """Record an event, or extend the newest one of the schedule when it is the same
    kind for the same reason (see `_merges`); True if it extended one."""
    params = {
        "name": name,
        "kind": kind,
        # An int4 column: a count past it (years of an every-second schedule) says "at least".
        "occurrences": min(count, MAX_COUNT),
        "first_occurrence": first,
        "last_occurrence": last,
        "reason": reason,
    }
    if _merges(reason) and session.execute(sql.EXTEND_EVENT, params).first() is not None:
        return True
    session.execute(sql.RECORD_EVENT, params)
    return False
