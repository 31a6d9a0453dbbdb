"""What people ask of cron: where each schedule stands, what it ran, and "run this one now"."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from app.cron import occurrences, sql
from app.cron.schedules import Schedule
from app.jobs import enqueue

#: How many of each schedule's newest jobs the page and the CLI show.
RECENT = 5


@dataclass(frozen=True)
class Run:
    """One job a schedule enqueued (or `run_now` did), and how it went."""

    job_id: uuid.UUID
    state: str
    scheduled_for: datetime
    finished_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Standing:
    """One schedule as of the database's now: `next_at` <= `now` means it is due.

    `recent` holds its newest jobs, newest first: empty if it never ran (or
    its jobs were pruned).
    """

    schedule: Schedule
    last_run_at: datetime | None
    next_at: datetime
    now: datetime
    paused_at: datetime | None = None
    paused_by: str | None = None
    recent: list[Run] = field(default_factory=list)

    @property
    def due(self) -> bool:
        return self.paused_at is None and self.next_at <= self.now

    @property
    def last_job(self) -> Run | None:
        return self.recent[0] if self.recent else None


def standings(session: Session, schedules: Iterable[Schedule]) -> list[Standing]:
    """Each schedule with its last occurrence enqueued, its newest jobs and the next one to come.

    A schedule never seen by cron starts from its first run, so its next
    occurrence is the first after now. A paused one's next occurrence is
    the one it will skip.
    """
    schedules = list(schedules)
    now: datetime = session.execute(sql.NOW).scalar_one()
    states = {row.name: row for row in session.execute(sql.READ_STATES)}
    recent = _recent(session, [schedule.name for schedule in schedules])
    found = []
    for schedule in schedules:
        state = states.get(schedule.name)
        previous = state.last_run_at if state else None
        following = occurrences.following(schedule.grid, previous or now)
        found.append(
            Standing(
                schedule,
                previous,
                following,
                now,
                state.paused_at if state else None,
                state.paused_by if state else None,
                recent.get(schedule.name, []),
            )
        )
    return found


def _recent(session: Session, names: list[str]) -> dict[str, list[Run]]:
    found: dict[str, list[Run]] = {}
    params = {"names": names, "per_schedule": RECENT}
    for row in session.execute(sql.RECENT_JOBS, params):
        found.setdefault(row.name, []).append(
            Run(row.job_id, row.state, row.scheduled_for, row.finished_at, row.last_error)
        )
    return found


@dataclass(frozen=True)
class Orphan:
    """State of a schedule no longer in code: kept until `prune_at`, then forgotten.

    `removed_at` is None until a cron process starts without the schedule
    and notices; only then does the retention begin.
    """

    name: str
    fingerprint: str | None
    last_run_at: datetime
    removed_at: datetime | None
    prune_at: datetime | None


def orphans(session: Session, schedules: Iterable[Schedule], retention_days: float) -> list[Orphan]:
    """The `cron_state` rows that no schedule in `schedules` owns, oldest removal first."""
    names = {schedule.name for schedule in schedules}
    retention = timedelta(days=retention_days)
    found = [
        Orphan(
            row.name,
            row.fingerprint,
            row.last_run_at,
            row.removed_at,
            None if row.removed_at is None else row.removed_at + retention,
        )
        for row in session.execute(sql.READ_STATES)
        if row.name not in names
    ]
    return sorted(found, key=lambda o: (o.removed_at is None, o.removed_at, o.name))


def run_now(session: Session, schedule: Schedule) -> uuid.UUID:
    """Enqueue `schedule`'s job once, now, in the caller's transaction.

    The job stands for the present moment (`scheduled_for` = now) and leaves
    the schedule's own occurrences and `last_run_at` alone.
    """
    now: datetime = session.execute(sql.NOW).scalar_one()
    return enqueue(
        session,
        schedule.job,
        dict(schedule.payload),
        context=f"cron {schedule.name} run by hand",
        cron_name=schedule.name,
        scheduled_for=now.astimezone(schedule.grid.zone),
    )


def recent_events(conn: Connection, limit: int = 20) -> list[Any]:
    """The newest occurrences cron caught up or skipped, over every schedule."""
    return list(
        conn.execute(
            text("""
            -- Small without an index: one row per gap, and a run of overlap skips
            -- extends its row instead of adding one per occurrence.
            SELECT name, kind, occurrences, first_occurrence, last_occurrence, reason,
                   recorded_at
            FROM cron_events ORDER BY recorded_at DESC, event_id DESC LIMIT :limit
        """),
            {"limit": limit},
        )
    )
