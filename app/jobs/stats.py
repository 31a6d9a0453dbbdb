"""Read-only views of the queue for the people who run it: the dashboard, CLI, metrics.

Nothing here changes a row. Each query says which index serves it, because
these run against tables of millions of rows while the queue is busy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from app.models import JOB_STATES


@dataclass(frozen=True)
class LiveProcess:
    worker_id: str
    kind: str
    hostname: str
    pid: int
    queues: list[str] | None
    concurrency: int
    started_at: datetime
    heartbeat_age: float
    running: list[tuple[uuid.UUID, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    #: state -> queue -> count
    counts: dict[str, dict[str, int]]
    #: one entry per minute of the last hour: (minute, succeeded, failed)
    per_minute: list[tuple[datetime, int, int]]
    oldest_due_age: float | None
    processes: list[LiveProcess]
    #: queued job names that no live worker can run, with how many wait
    orphaned: dict[str, int]
    paused: list[str]
    dead_tuples: int
    live_tuples: int
    oldest_transaction_age: float | None

    def total(self, state: str) -> int:
        return sum(self.counts.get(state, {}).values())

    @property
    def queues(self) -> list[str]:
        return sorted({q for per_queue in self.counts.values() for q in per_queue})


def overview(conn: Connection) -> Overview:
    """Everything the overview page shows, in a handful of queries."""
    counts: dict[str, dict[str, int]] = {state: {} for state in JOB_STATES}
    # One pass over the table; the price of exact numbers (see the ops guide).
    for state, queue, count in conn.execute(
        text("SELECT state, queue, count(*) FROM jobs GROUP BY state, queue")
    ):
        counts[state][queue] = count
    minutes = conn.execute(
        text("""
        -- ix_jobs_finished: only the last hour of finished jobs is read.
        SELECT m.minute,
               count(j.job_id) FILTER (WHERE j.state = 'succeeded'),
               count(j.job_id) FILTER (WHERE j.state = 'failed')
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',
                             date_trunc('minute', now()), interval '1 minute') AS m(minute)
        LEFT JOIN jobs j
          ON j.state IN ('succeeded', 'failed', 'cancelled')
         AND j.finished_at >= m.minute AND j.finished_at < m.minute + interval '1 minute'
        GROUP BY m.minute ORDER BY m.minute
    """)
    ).all()
    oldest = conn.execute(
        text("""
        -- ix_jobs_claim holds only queued rows.
        SELECT extract(epoch FROM now() - min(run_at)) FROM jobs
        WHERE state = 'queued' AND run_at <= now()
    """)
    ).scalar_one()
    dead, live = conn.execute(
        text(
            "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'jobs'"
        )
    ).one()
    oldest_xact = conn.execute(
        text("""
        -- Any open transaction on the server holds back vacuum of the jobs table.
        SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity
        WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
          AND state <> 'idle' AND backend_type = 'client backend'
    """)
    ).scalar_one()
    processes = live_processes(conn)
    return Overview(
        counts=counts,
        per_minute=[(m, s, f) for m, s, f in minutes],
        oldest_due_age=None if oldest is None else float(oldest),
        processes=processes,
        orphaned=orphaned_names(conn),
        paused=list(conn.execute(text("SELECT queue FROM queue_pauses ORDER BY queue")).scalars()),
        dead_tuples=int(dead),
        live_tuples=int(live),
        oldest_transaction_age=None if oldest_xact is None else float(oldest_xact),
    )


def live_processes(conn: Connection) -> list[LiveProcess]:
    """Workers and cron processes with their heartbeat age and what they run now."""
    running: dict[str, list[tuple[uuid.UUID, str]]] = {}
    for worker, job_id, name in conn.execute(
        text("SELECT locked_by, job_id, name FROM jobs WHERE state = 'running' ORDER BY started_at")
    ):
        running.setdefault(worker, []).append((job_id, name))
    rows = conn.execute(
        text("""
        SELECT worker_id, kind, hostname, pid, queues, concurrency, started_at,
               extract(epoch FROM now() - heartbeat_at)
        FROM workers ORDER BY kind, started_at
    """)
    )
    return [
        LiveProcess(w, k, h, p, q, c, s, float(age), running.get(w, []))
        for w, k, h, p, q, c, s, age in rows
    ]


def orphaned_names(conn: Connection) -> dict[str, int]:
    """Queued job names that no registered worker process knows how to run."""
    rows = conn.execute(
        text("""
        SELECT j.name, count(*) FROM jobs j
        WHERE j.state = 'queued'
          AND NOT EXISTS (SELECT 1 FROM workers w
                          WHERE w.kind = 'worker' AND j.name = ANY(w.job_names))
        GROUP BY j.name ORDER BY j.name
    """)
    )
    return {name: count for name, count in rows}


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    queue: str | None = None
    name: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column in ("state", "queue", "name"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        return (" AND ".join(clauses) or "true"), params


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the id of its last row (ids sort by creation time)."""

    job_id: uuid.UUID

    def encode(self) -> str:
        return str(self.job_id)

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        """Parse `encode`'s output; raises ValueError on anything else."""
        return cls(uuid.UUID(raw))


def list_jobs(
    conn: Connection, where: JobFilter, after: Cursor | None = None, limit: int = 50
) -> tuple[list[Any], Cursor | None]:
    """A page of jobs, newest first, and the cursor of the next page (None: last page).

    Keyset pagination on the job id (UUIDv7: creation order): the next page
    starts after the last row seen, so page 1,000 costs what page 1 costs.
    The primary key serves the plain list and filters by queue or common
    state; ix_jobs_name_newest and ix_jobs_ended_badly_newest the rest.
    """
    condition, params = where.where()
    if after is not None:
        condition += " AND job_id < :after"
        params["after"] = after.job_id
    rows = conn.execute(
        text(f"""
        SELECT job_id, name, queue, state, priority, attempts, max_attempts, created_at,
               run_at, finished_at, last_error
        FROM jobs WHERE {condition}
        ORDER BY job_id DESC
        LIMIT :limit
    """),
        {**params, "limit": limit + 1},
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(rows[-1].job_id) if more and rows else None
    return list(rows), cursor


def job_detail(conn: Connection, job_id: uuid.UUID) -> Any | None:
    """Every column of one job, or None."""
    return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).first()


def cron_events(conn: Connection, limit: int = 20) -> list[Any]:
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
