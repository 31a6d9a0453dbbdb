"""Why jobs are not running: held by their key's limit, their queue's limits, or a pause.

Read-only answers for the dashboard, the CLI and metrics, in words an
operator can act on ("waiting for key user:7: 1 of 1 running").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from app.jobs import sql


def held_back(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per queue: (jobs waiting for their key, due jobs held by the queue's limits)."""
    rows = conn.execute(
        text("""
        -- Waiting jobs through ix_jobs_waiting; due queued jobs only of limited
        -- queues (a handful), through ix_jobs_claim_queue.
        SELECT queue, count(*), 0 FROM jobs WHERE state = 'waiting' GROUP BY queue
        UNION ALL
        SELECT l.queue, 0, (SELECT count(*) FROM jobs j
                            WHERE j.state = 'queued' AND j.queue = l.queue AND j.run_at <= now())
        FROM queue_limits l
    """)
    )
    held: dict[str, tuple[int, int]] = {}
    for queue, keyed, limited in rows:
        before = held.get(queue, (0, 0))
        held[queue] = (before[0] + keyed, before[1] + limited)
    return {queue: counts for queue, counts in held.items() if any(counts)}


@dataclass(frozen=True)
class KeyUse:
    key: str
    kind: str
    limit: int
    active: int
    waiting: int


def busiest_keys(conn: Connection, limit: int = 10) -> list[KeyUse]:
    """The keys with the most waiting jobs, with how many of their limit are in use."""
    rows = conn.execute(
        text(f"""
        SELECT w.flow_key, min(w.flow_kind), min(w.flow_limit),
               (SELECT count(*) FROM jobs j WHERE j.flow_key = w.flow_key AND {sql.ACTIVE}),
               count(*)
        FROM jobs w WHERE w.state = 'waiting'
        GROUP BY w.flow_key ORDER BY count(*) DESC, w.flow_key LIMIT :limit
    """),
        {"limit": limit},
    )
    return [KeyUse(*row) for row in rows]


def why_not_running(conn: Connection, job_id: uuid.UUID) -> str | None:
    """In words, why a waiting or queued job has not started; None for any other job."""
    job = conn.execute(
        text("""
        SELECT state, queue, run_at, run_at > now() AS later, flow_key, flow_kind, flow_limit,
               (SELECT paused_by FROM queue_pauses p WHERE p.queue = j.queue) AS paused_by,
               EXISTS (SELECT 1 FROM queue_pauses p WHERE p.queue = j.queue) AS paused
        FROM jobs j WHERE job_id = :id
    """),
        {"id": job_id},
    ).first()
    if job is None or job.state not in ("waiting", "queued"):
        return None
    if job.state == "waiting":
        return _waiting_for_key(conn, job)
    if job.paused:
        return f"its queue {job.queue} is paused" + (
            f" by {job.paused_by}" if job.paused_by else ""
        )
    if job.later:
        return f"it is scheduled for {job.run_at:%Y-%m-%d %H:%M:%S %Z}"
    limits = conn.execute(
        text("""
        SELECT concurrency, rate, burst,
               (SELECT count(*) FROM jobs r
                WHERE r.state = 'running' AND r.queue = :queue) AS running
        FROM queue_limits WHERE queue = :queue
    """),
        {"queue": job.queue},
    ).first()
    if limits is not None:
        if limits.concurrency is not None and limits.running >= limits.concurrency:
            return (
                f"its queue {job.queue} is at its limit: {limits.running} of "
                f"{limits.concurrency} running"
            )
        if limits.rate is not None:
            return (
                f"its queue {job.queue} starts at most {limits.rate:g} jobs/s; it is next in line"
            )
    return "it waits for a free worker slot"


def _waiting_for_key(conn: Connection, job: Any) -> str:
    active = conn.execute(
        text(f"SELECT count(*) FROM jobs j WHERE j.flow_key = :key AND {sql.ACTIVE}"),
        {"key": job.flow_key},
    ).scalar_one()
    if job.flow_kind == "concurrency":
        return f"waiting for key {job.flow_key}: {active} of {job.flow_limit} running or next"
    blocked = conn.execute(
        text(
            "SELECT 1 FROM jobs WHERE flow_key = :key AND state = 'failed' AND flow_kind = "
            "'ordering_block' LIMIT 1"
        ),
        {"key": job.flow_key},
    ).first()
    if blocked is not None:
        return (
            f"waiting for ordering key {job.flow_key}: a job before it failed and holds the key "
            "until it is retried or deleted"
        )
    return f"waiting its turn on ordering key {job.flow_key}"


def queue_limits(conn: Connection) -> list[Any]:
    """Every limited queue with its limits and what runs in it now."""
    return list(
        conn.execute(
            text("""
            SELECT l.queue, l.concurrency, l.rate, l.burst, l.set_by, l.set_at,
                   (SELECT count(*) FROM jobs r WHERE r.state = 'running' AND r.queue = l.queue)
                       AS running
            FROM queue_limits l ORDER BY l.queue
        """)
        )
    )
