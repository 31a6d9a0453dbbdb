"""One schedule's step, in one transaction: enqueue what fell due and remember it.

`catch_up` locks the schedule's `cron_state` row, works out the occurrences
since `last_run_at`, applies the missed-run policy, enqueues, records any
gap in `cron_events` and advances `last_run_at`, all in the caller's
transaction. A crash anywhere before the commit leaves no trace, so the
occurrence is neither lost nor enqueued twice: the next process to get the
row does the same work again. Peers skip a locked row; the unique index on
(cron_name, scheduled_for) is the last line of defence.

A paused schedule (`control.pause`) is stepped all the same, but every
occurrence due is skipped and recorded, whatever the missed-run policy: the
policies are about occurrences cron could not handle, and a paused one was
handled on time, by skipping it. On resume nothing is owed.

The state remembers which definition it was counted on (its fingerprint).
When the code's definition differs, or the schedule comes back after a
cron process noticed its removal, the occurrences since `last_run_at` are
not downtime: the schedule starts afresh from now, and says so in a
`redefined` event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app import logs, tracing
from app.cron import events, occurrences, sql
from app.cron.events import ON_TIME, OVERLAP
from app.cron.schedules import Schedule
from app.jobs import enqueue

log = logging.getLogger(__name__)

#: What bounds a step's transaction (see `sql.BOUND_STEP`). A step takes
#: milliseconds; these are generous for a loaded machine and short enough
#: that a peer takes over a frozen process's schedule within seconds.
STEP_TIMEOUTS = {"lock": "2s", "statement": "5s", "idle": "5s"}


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


def bound(session: Session) -> None:
    """Bound the session's current transaction by `STEP_TIMEOUTS`; call it first."""
    session.execute(sql.BOUND_STEP, STEP_TIMEOUTS)


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


def catch_up(
    session: Session, schedule: Schedule, now: datetime, *, since: datetime | None = None
) -> Step:
    """Enqueue `schedule`'s due occurrences as of `now`; the caller commits.

    `now` must be the database's clock (`sql.NOW`, read in this transaction);
    tests pass their own to play out gaps of any length. `since` is when the
    calling process started (database clock): a removal noticed after that
    was noticed by a newer process, and is not this one's to undo.
    """
    name = schedule.name
    state = session.execute(sql.LOCK_STATE, {"name": name}).one_or_none()
    if state is None:
        return _start(session, schedule, now)
    change = _change(schedule, state, since)
    if change:
        return _restart(session, schedule, state.last_run_at, now, change)
    if state.fingerprint is None:
        session.execute(sql.ADOPT_STATE, {"name": name, "fingerprint": schedule.fingerprint})
    last_run_at: datetime = state.last_run_at
    if occurrences.count(schedule.grid, last_run_at, now) == 0:
        return Step(last_run_at)
    if state.paused_at is not None:
        return skip_paused(session, schedule, last_run_at, now, state.paused_by)
    decided = plan(schedule, last_run_at, now)
    if decided.enqueue and schedule.skip_if_running:
        decided = _unless_running(session, schedule, decided)
    for occurrence in decided.enqueue:
        _enqueue(session, schedule, occurrence)
    events.missed(
        session, schedule, last_run_at, now, decided.enqueue, decided.skipped, decided.reason
    )
    newest = occurrences.latest(schedule.grid, now)
    session.execute(sql.ADVANCE_STATE, {"name": name, "last_run_at": newest})
    return Step(newest, decided.enqueue, decided.skipped)


def skip_paused(
    session: Session, schedule: Schedule, last_run_at: datetime, now: datetime, by: str | None
) -> Step:
    """Skip and record every occurrence in (last_run_at, now]; the caller holds the row lock."""
    due = occurrences.count(schedule.grid, last_run_at, now)
    if due == 0:
        return Step(last_run_at)
    events.missed(session, schedule, last_run_at, now, [], due, events.paused(by))
    newest = occurrences.latest(schedule.grid, now)
    session.execute(sql.ADVANCE_STATE, {"name": schedule.name, "last_run_at": newest})
    return Step(newest, [], due)


def _enqueue(session: Session, schedule: Schedule, occurrence: datetime) -> None:
    """Enqueue one occurrence, handed over in the schedule's own timezone.

    A daily 00:30 Europe/Berlin job then sees its own date in
    `ctx.scheduled_for`, not the day before in UTC.
    """
    local = occurrence.astimezone(schedule.grid.zone)
    with (
        logs.bound(origin=f"cron {schedule.name} {local.isoformat()}"),
        # Each occurrence a trace of its own; the job's spans follow from it.
        tracing.root(
            f"cron {schedule.name}", pillars__cron=schedule.name, pillars__job__name=schedule.job
        ) as span,
    ):
        job_id = enqueue(
            session,
            schedule.job,
            dict(schedule.payload),
            context=f"cron {schedule.name} for {local.isoformat()}",
            cron_name=schedule.name,
            scheduled_for=local,
        )
        if span is not None:
            span.set_attribute("messaging.message.id", str(job_id))
        log.info("schedule %s: enqueued job %s for %s", schedule.name, job_id, local.isoformat())


def _change(schedule: Schedule, state: Any, since: datetime | None) -> str:
    """Why the state no longer describes this schedule, or '' when it does."""
    if state.fingerprint is not None and state.fingerprint != schedule.fingerprint:
        return f"definition changed from {state.fingerprint} to {schedule.fingerprint}"
    removed_at: datetime | None = state.removed_at
    if removed_at is not None and (since is None or removed_at <= since):
        return f"back in code after a cron process found it removed at {removed_at.isoformat()}"
    return ""


def _start(session: Session, schedule: Schedule, now: datetime) -> Step:
    """First sight of a schedule: start from now, owing nothing for the past."""
    if session.execute(sql.STATE_EXISTS, {"name": schedule.name}).scalar_one():
        return Step(busy=True)
    start = occurrences.latest(schedule.grid, now)
    params = {"name": schedule.name, "last_run_at": start, "fingerprint": schedule.fingerprint}
    if session.execute(sql.START_STATE, params).scalar_one_or_none() is None:
        return Step(busy=True)  # a peer holds (or just created) the row
    following = occurrences.following(schedule.grid, now)
    log.info(
        "schedule %s: first seen; starts now, first occurrence %s",
        schedule.name,
        following.isoformat(),
    )
    return Step(start)


def _restart(
    session: Session, schedule: Schedule, last_run_at: datetime, now: datetime, reason: str
) -> Step:
    """Start a redefined (or re-added) schedule from now: nothing of the past is owed."""
    start = occurrences.latest(schedule.grid, now)
    params = {"name": schedule.name, "last_run_at": start, "fingerprint": schedule.fingerprint}
    session.execute(sql.RESTART_STATE, params)
    events.redefined(session, schedule, last_run_at, start, reason)
    return Step(start)


def _unless_running(session: Session, schedule: Schedule, decided: Plan) -> Plan:
    """Enqueue only the newest planned occurrence, and none while an earlier job lives."""
    if session.execute(sql.LIVE_JOB, {"name": schedule.name}).scalar_one():
        skipped = decided.skipped + len(decided.enqueue)
        return Plan([], skipped, OVERLAP)
    return Plan(decided.enqueue[-1:], decided.skipped + len(decided.enqueue) - 1, decided.reason)
