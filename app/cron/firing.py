"""One schedule's step, in one transaction: enqueue what fell due and remember it.

`catch_up` locks the schedule's `cron_state` row, works out the occurrences
since `last_run_at`, applies the missed-run policy, enqueues, records any
gap in `cron_events` and advances `last_run_at`, all in the caller's
transaction. A crash anywhere before the commit leaves no trace, so the
occurrence is neither lost nor enqueued twice: the next process to get the
row does the same work again. Peers skip a locked row; the unique index on
(cron_name, scheduled_for) is the last line of defence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.cron import occurrences, sql
from app.cron.schedules import Schedule
from app.jobs import enqueue

log = logging.getLogger(__name__)

#: An occurrence handled within this long of its time is on time, not missed.
ON_TIME = timedelta(seconds=60)
OVERLAP = "the previous occurrence is still queued or running"


@dataclass(frozen=True)
class Step:
    """What one `catch_up` did; `busy` means a peer held the schedule."""

    last_run_at: datetime | None = None
    enqueued: list[datetime] = field(default_factory=list)
    skipped: int = 0
    busy: bool = False


@dataclass(frozen=True)
class Plan:
    enqueue: list[datetime]
    skipped: int
    reason: str


def plan(schedule: Schedule, last_run_at: datetime, now: datetime) -> Plan:
    """Decide which of the occurrences in (last_run_at, now] to enqueue."""
    grid = schedule.grid
    due = occurrences.count(grid, last_run_at, now)
    newest = occurrences.latest(grid, now)
    on_time = now - newest <= ON_TIME
    if due == 1 and on_time:
        return Plan([newest], 0, "")
    reason = f"{due} occurrence(s) fell due while cron was away; policy {schedule.missed}"
    if schedule.missed == "all":
        kept = occurrences.newest(grid, last_run_at, now, schedule.max_catch_up)
        return Plan(kept, due - len(kept), reason)
    if schedule.missed == "latest" or on_time:
        return Plan([newest], due - 1, reason)
    return Plan([], due, reason)


def catch_up(session: Session, schedule: Schedule, now: datetime) -> Step:
    """Enqueue `schedule`'s due occurrences as of `now`; the caller commits.

    `now` must be the database's clock (`sql.NOW`, read in this transaction);
    tests pass their own to play out gaps of any length.
    """
    name = schedule.name
    last_run_at = session.execute(sql.LOCK_STATE, {"name": name}).scalar_one_or_none()
    if last_run_at is None:
        return _start(session, schedule, now)
    if occurrences.count(schedule.grid, last_run_at, now) == 0:
        return Step(last_run_at)
    decided = plan(schedule, last_run_at, now)
    if decided.enqueue and schedule.skip_if_running:
        decided = _unless_running(session, schedule, last_run_at, decided)
    for occurrence in decided.enqueue:
        job_id = enqueue(
            session,
            schedule.job,
            dict(schedule.payload),
            context=f"cron {name} for {occurrence.isoformat()}",
            cron_name=name,
            scheduled_for=occurrence,
        )
        log.info("schedule %s: enqueued job %s for %s", name, job_id, occurrence.isoformat())
    _record(session, schedule, last_run_at, now, decided)
    newest = occurrences.latest(schedule.grid, now)
    session.execute(sql.ADVANCE_STATE, {"name": name, "last_run_at": newest})
    return Step(newest, decided.enqueue, decided.skipped)


def _start(session: Session, schedule: Schedule, now: datetime) -> Step:
    """First sight of a schedule: start from now, owing nothing for the past."""
    if session.execute(sql.STATE_EXISTS, {"name": schedule.name}).scalar_one():
        return Step(busy=True)
    start = occurrences.latest(schedule.grid, now)
    params = {"name": schedule.name, "last_run_at": start}
    if session.execute(sql.START_STATE, params).scalar_one_or_none() is None:
        return Step(busy=True)  # a peer holds (or just created) the row
    following = occurrences.following(schedule.grid, now)
    log.info(
        "schedule %s: first seen; starts now, first occurrence %s",
        schedule.name,
        following.isoformat(),
    )
    return Step(start)


def _unless_running(
    session: Session, schedule: Schedule, last_run_at: datetime, decided: Plan
) -> Plan:
    """Enqueue only the newest planned occurrence, and none while an earlier job lives."""
    if session.execute(sql.LIVE_JOB, {"name": schedule.name}).scalar_one():
        skipped = decided.skipped + len(decided.enqueue)
        return Plan([], skipped, OVERLAP)
    return Plan(decided.enqueue[-1:], decided.skipped + len(decided.enqueue) - 1, decided.reason)


def _record(
    session: Session, schedule: Schedule, last_run_at: datetime, now: datetime, decided: Plan
) -> None:
    """Write what was skipped and what was caught up late, for the dashboard."""
    grid = schedule.grid
    if decided.skipped:
        # The skipped are always the oldest due, the enqueued the newest.
        first = occurrences.following(grid, last_run_at)
        last = occurrences.latest(grid, now)
        if decided.enqueue:
            last = occurrences.latest(grid, decided.enqueue[0] - timedelta(microseconds=1))
        _event(session, schedule, "skipped", decided.skipped, first, last, decided.reason)
        log.warning(
            "schedule %s: skipped %d occurrence(s) from %s to %s: %s",
            schedule.name,
            decided.skipped,
            first.isoformat(),
            last.isoformat(),
            decided.reason,
        )
    late = [o for o in decided.enqueue if now - o > ON_TIME]
    if late:
        _event(session, schedule, "caught_up", len(late), late[0], late[-1], decided.reason)
        log.warning(
            "schedule %s: caught up %d late occurrence(s) from %s to %s",
            schedule.name,
            len(late),
            late[0].isoformat(),
            late[-1].isoformat(),
        )


def _event(
    session: Session,
    schedule: Schedule,
    kind: str,
    count: int,
    first: datetime,
    last: datetime,
    reason: str,
) -> None:
    params = {
        "name": schedule.name,
        "kind": kind,
        "occurrences": count,
        "first_occurrence": first,
        "last_occurrence": last,
        "reason": reason,
    }
    if reason == OVERLAP and session.execute(sql.EXTEND_EVENT, params).first() is not None:
        return
    session.execute(sql.RECORD_EVENT, params)
