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

from app.db import without_jit
from app.jobs.counts import Counts, by_state_and_queue
from app.models import FINISHED_SQL


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
    #: jobs per state and queue, exact or estimated (see `app.jobs.counts`)
    tally: Counts
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

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """state -> queue -> jobs."""
        return self.tally.by_queue

    def total(self, state: str) -> int:
        return self.tally.totals.get(state, 0)

    @property
    def queues(self) -> list[str]:
        return self.tally.queues


def overview(conn: Connection) -> Overview:
    """Everything the overview page shows, in a handful of queries."""
    without_jit(conn)
    minutes = conn.execute(
        text(f"""
        -- ix_jobs_finished: only the last hour of finished jobs is read.
        SELECT m.minute,
               count(j.job_id) FILTER (WHERE j.state = 'succeeded'),
               count(j.job_id) FILTER (WHERE j.state = 'failed')
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',
                             date_trunc('minute', now()), interval '1 minute') AS m(minute)
        LEFT JOIN jobs j
          ON j.{FINISHED_SQL}
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
    dead, live = jobs_tuples(conn)
    processes = live_processes(conn)
    return Overview(
        tally=by_state_and_queue(conn),
        per_minute=[(m, s, f) for m, s, f in minutes],
        oldest_due_age=None if oldest is None else float(oldest),
        processes=processes,
        orphaned=orphaned_names(conn),
        paused=paused_queues(conn),
        dead_tuples=dead,
        live_tuples=live,
        oldest_transaction_age=oldest_transaction_age(conn),
    )


def paused_queues(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT queue FROM queue_pauses ORDER BY queue")).scalars())


def jobs_tuples(conn: Connection) -> tuple[int, int]:
    """Dead and live row versions of `jobs`, from the statistics (no scan)."""
    dead, live = conn.execute(
        text(
            "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'jobs'"
        )
    ).one()
    return int(dead), int(live)


def oldest_transaction_age(conn: Connection) -> float | None:
    """Seconds the oldest open transaction on the server has run, if any is open."""
    age = conn.execute(
        text("""
        -- Any open transaction on the server holds back vacuum of the jobs table.
        SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity
        WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
          AND state <> 'idle' AND backend_type = 'client backend'
    """)
    ).scalar_one()
    return None if age is None else float(age)


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


#: Queued jobs per orphaned name are counted up to this many ("1,000+" beyond).
ORPHANS_COUNTED = 1_000


def orphaned_names(conn: Connection) -> dict[str, int]:
    """Queued job names that no registered worker process knows how to run.

    Reads the distinct names from ix_jobs_name_newest (one probe per name,
    however many rows each has; it holds every job but the running ones,
    and a running job is not waiting for anyone), keeps those no worker lists, and counts
    their queued jobs up to ORPHANS_COUNTED + 1: cheap when all is well,
    bounded when it is not.
    """
    rows = conn.execute(
        text("""
        WITH RECURSIVE names AS (
            (SELECT name FROM jobs WHERE state <> 'running' ORDER BY name LIMIT 1)
            UNION ALL
            SELECT (SELECT j.name FROM jobs j
                    WHERE j.name > n.name AND j.state <> 'running' ORDER BY j.name LIMIT 1)
            FROM names n WHERE n.name IS NOT NULL
        ), unknown AS (
            SELECT n.name FROM names n
            WHERE n.name IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM workers w
                              WHERE w.kind = 'worker' AND n.name = ANY(w.job_names))
        )
        SELECT u.name, q.queued FROM unknown u
        CROSS JOIN LATERAL (
            SELECT count(*) AS queued FROM (
                SELECT 1 FROM jobs j WHERE j.state = 'queued' AND j.name = u.name LIMIT :cap
            ) AS t
        ) AS q
        WHERE q.queued > 0 ORDER BY u.name
    """),
        {"cap": ORPHANS_COUNTED + 1},
    )
    return {name: count for name, count in rows}


_FINISHED = FINISHED_SQL
_LIVE = "state IN ('waiting', 'queued', 'running')"
#: The jobs ix_jobs_name_newest holds; the running ones are read through ix_jobs_running.
_AT_REST = "state <> 'running'"
_RUNNING = "state = 'running'"


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    queue: str | None = None
    name: str | None = None
    #: a JSON object (canonical text) the payload must contain: `payload @> ...`
    payload: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column in ("state", "queue", "name"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        if self.payload is not None:
            clauses.append("payload @> CAST(:payload AS jsonb)")
            params["payload"] = self.payload
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


#: Payloads up to this size (stored, compressed) come with the list for a preview;
#: larger ones only say how large they are, so one page never carries megabytes.
PREVIEW_BYTES = 2048


def _page(conn: Connection, condition: str, params: dict[str, Any], limit: int) -> list[Any]:
    return list(
        conn.execute(
            text(f"""
            SELECT job_id, name, queue, state, priority, attempts, max_attempts, created_at,
                   run_at, started_at, finished_at, last_error,
                   extract(epoch FROM now() - created_at) AS age,
                   extract(epoch FROM run_at - now()) AS due_in,
                   extract(epoch FROM now() - finished_at) AS finished_age,
                   CASE WHEN state <> 'queued' AND started_at IS NOT NULL
                        THEN extract(epoch FROM coalesce(finished_at, now()) - started_at)
                   END AS ran_for,
                   pg_column_size(payload) AS payload_bytes,
                   CASE WHEN pg_column_size(payload) <= {PREVIEW_BYTES} THEN payload END
                       AS payload_preview
            FROM jobs WHERE {condition}
            ORDER BY job_id DESC
            LIMIT :limit
        """),
            {**params, "limit": limit},
        )
    )


def _parts(where: JobFilter) -> tuple[str, ...]:
    """The searches a page over every state is merged from; none: one search does."""
    if where.state is not None:
        return ()
    if where.payload is not None:
        return (_FINISHED, _LIVE)
    if where.name:
        return (_AT_REST, _RUNNING)
    return ()


def list_jobs(
    conn: Connection, where: JobFilter, after: Cursor | None = None, limit: int = 50
) -> tuple[list[Any], Cursor | None]:
    """A page of jobs, newest first, and the cursor of the next page (None: last page).

    Keyset pagination on the job id (UUIDv7: creation order): the next page
    starts after the last row seen, so page 1,000 costs what page 1 costs.
    The primary key serves the plain list and filters by queue or common
    state; ix_jobs_name_newest and ix_jobs_ended_badly_newest the rest.

    Some searches over every state are two searches, merged, each served by
    an index: a payload search reads finished jobs through their GIN index
    (ix_jobs_payload_finished) and live ones apart; a name search reads
    ix_jobs_name_newest, which leaves running jobs out, and the running
    ones through ix_jobs_running.
    """
    condition, params = where.where()
    if after is not None:
        condition += " AND job_id < :after"
        params["after"] = after.job_id
    if parts := _parts(where):
        pages = (_page(conn, f"{condition} AND {part}", params, limit + 1) for part in parts)
        rows = [row for page in pages for row in page]
        rows.sort(key=lambda row: row.job_id, reverse=True)
    else:
        rows = _page(conn, condition, params, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(rows[-1].job_id) if more and rows else None
    return rows, cursor


def job_detail(conn: Connection, job_id: uuid.UUID) -> Any | None:
    """Every column of one job, or None."""
    return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).first()
