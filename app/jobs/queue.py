"""Writing queue messages: the contract between web, cron and worker.

A message is a job name and a JSON payload. It is written inside the
caller's SQLAlchemy session and never committed here: the job exists only if
the caller's own writes commit, so "user created" and "welcome email queued"
can never disagree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.jobs import sql
from app.jobs.ids import new_job_id, new_job_ids
from app.jobs.registry import JobSpec, registry


@dataclass(frozen=True)
class JobRequest:
    """One message for `enqueue_many`; options left as None take the handler's defaults."""

    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    run_at: datetime | None = None
    delay: float | timedelta | None = None
    max_attempts: int | None = None
    unique_key: str | None = None
    context: str = ""


@dataclass(frozen=True)
class _Row:
    name: str
    payload: str
    document: dict[str, Any]
    queue: str
    priority: int
    run_at: datetime | None
    delay: float
    max_attempts: int
    unique_key: str | None
    context: str

    def columns(self) -> dict[str, Any]:
        """The values as statement parameters; the payload goes as JSON text."""
        return {key: value for key, value in self.__dict__.items() if key != "document"}


def _seconds(delay: float | timedelta | None) -> float:
    if delay is None:
        return 0.0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if seconds < 0:
        raise ValueError(f"delay must not be negative, got {seconds}")
    return seconds


def _prepare(request: JobRequest) -> _Row:
    """Validate one message against its handler and fill in the handler's defaults."""
    spec: JobSpec = registry.get(request.name)
    raw = request.payload
    document = dict(raw) if isinstance(raw, Mapping) else raw
    payload = spec.encode_payload(document)
    if request.run_at is not None and request.delay is not None:
        raise ValueError("give run_at or delay, not both")
    if request.run_at is not None and request.run_at.tzinfo is None:
        raise ValueError("run_at must be timezone-aware (naive times are ambiguous)")
    max_attempts = spec.max_attempts if request.max_attempts is None else request.max_attempts
    priority = spec.priority if request.priority is None else request.priority
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ValueError(f"priority must be a whole number, got {priority!r}")
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    return _Row(
        name=spec.name,
        payload=payload,
        document=document,
        queue=request.queue or spec.queue,
        priority=priority,
        run_at=request.run_at,
        delay=_seconds(request.delay),
        max_attempts=max_attempts,
        unique_key=request.unique_key,
        context=request.context,
    )


def enqueue(
    session: Session,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    max_attempts: int | None = None,
    unique_key: str | None = None,
    context: str = "",
    cron_name: str | None = None,
    scheduled_for: datetime | None = None,
) -> uuid.UUID:
    """Add a job to the caller's transaction and return its id; does not commit.

    Raises `UnknownJob` or `InvalidPayload` before anything is written. With a
    `unique_key`, a live (queued or running) job with the same key is returned
    instead of adding a second one. Higher `priority` runs first.
    """
    row = _prepare(
        JobRequest(
            name,
            {} if payload is None else payload,
            queue,
            priority,
            run_at,
            delay,
            max_attempts,
            unique_key,
            context,
        )
    )
    params = {
        **row.columns(),
        "job_id": new_job_id(),
        "cron_name": cron_name,
        "scheduled_for": scheduled_for,
    }
    # The session's own connection and transaction, through Core: a plain
    # INSERT needs none of the ORM's per-statement machinery.
    conn = session.connection()
    if unique_key is None and cron_name is None:
        inserted: uuid.UUID = conn.execute(sql.ENQUEUE, params).scalar_one()
        return inserted
    job_id = conn.execute(sql.ENQUEUE_UNIQUE, params).scalar_one_or_none()
    if job_id is None:
        job_id = _existing(conn, unique_key, cron_name, scheduled_for)
    if job_id is None:
        # The conflicting job finished between the insert and the lookup: insert again.
        job_id = conn.execute(sql.ENQUEUE_UNIQUE, params).scalar_one()
    return job_id


def _existing(
    conn: Connection, unique_key: str | None, cron_name: str | None, scheduled_for: datetime | None
) -> uuid.UUID | None:
    """Find the live job with this unique key, or the job for this cron occurrence."""
    found: uuid.UUID | None = None
    if unique_key is not None:
        lookup = conn.execute(sql.FIND_LIVE_BY_UNIQUE_KEY, {"unique_key": unique_key})
        found = lookup.scalar_one_or_none()
    if found is None and cron_name is not None:
        occurrence = {"cron_name": cron_name, "scheduled_for": scheduled_for}
        found = conn.execute(sql.FIND_OCCURRENCE, occurrence).scalar_one_or_none()
    return found


def enqueue_many(session: Session, requests: Iterable[JobRequest]) -> list[uuid.UUID]:
    """Add many jobs in one statement and return the ids of those inserted; does not commit.

    Every message is validated before any is written. Messages whose
    `unique_key` matches a live job are skipped (their ids are not returned).
    """
    rows = [_prepare(request) for request in requests]
    if not rows:
        return []
    encoded = json.dumps(
        [
            {
                "job_id": str(job_id),
                "name": row.name,
                "payload": row.document,
                "queue": row.queue,
                "priority": row.priority,
                "run_at": None if row.run_at is None else row.run_at.isoformat(),
                "delay": row.delay,
                "max_attempts": row.max_attempts,
                "unique_key": row.unique_key,
                "context": row.context,
            }
            for job_id, row in zip(new_job_ids(len(rows)), rows, strict=True)
        ]
    )
    result = session.connection().execute(sql.ENQUEUE_MANY, {"rows": encoded})
    return list(result.scalars())


def pause_queue(session: Session, queue: str, paused_by: str = "") -> None:
    """Stop every worker from claiming from `queue` (running jobs finish); does not commit."""
    session.connection().execute(sql.PAUSE_QUEUE, {"queue": queue, "paused_by": paused_by})


def resume_queue(session: Session, queue: str) -> None:
    """Let workers claim from `queue` again; they wake when the caller commits."""
    session.connection().execute(sql.RESUME_QUEUE, {"queue": queue})
