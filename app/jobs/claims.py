"""The worker's side of the queue: claim, save outcomes, heartbeat, release, rescue.

Thin functions over the statements in `app.jobs.sql`. Each takes a
connection inside a transaction the caller owns, so the worker can save the
outcomes of finished jobs and claim the next ones in a single commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.jobs import sql
from app.jobs.execution import Claimed, Outcome

NOTIFY_CHANNEL = "pillars_jobs"


def claim(
    conn: Connection, worker_id: str, queues: Sequence[str] | None, limit: int
) -> list[Claimed]:
    """Lock up to `limit` due jobs for `worker_id`, highest priority and oldest first."""
    if limit <= 0:
        return []
    params: dict[str, object] = {"worker_id": worker_id, "limit": limit}
    if queues is None:
        statement = sql.CLAIM_ANY
    elif len(queues) == 1:
        statement, params["queue"] = sql.CLAIM_ONE_QUEUE, queues[0]
    else:
        statement, params["queues"] = sql.CLAIM_QUEUES, list(queues)
    return [
        Claimed(r.job_id, r.name, r.payload, r.queue, r.attempts, r.max_attempts, r.scheduled_for)
        for r in conn.execute(statement, params)
    ]


@dataclass(frozen=True)
class Saved:
    """Which outcomes reached the database; the rest had lost their claim."""

    succeeded: list[uuid.UUID]
    retried: list[uuid.UUID]
    failed: list[uuid.UUID]
    lost: list[Outcome]


def save_outcomes(conn: Connection, worker_id: str, outcomes: Sequence[Outcome]) -> Saved:
    """Record finished attempts in two statements, whatever their number."""
    done = [o for o in outcomes if o.ok]
    bad = [o for o in outcomes if not o.ok]
    succeeded: list[uuid.UUID] = []
    retried: list[uuid.UUID] = []
    failed: list[uuid.UUID] = []
    if done:
        succeeded = list(
            conn.execute(
                sql.COMPLETE,
                {
                    "worker_id": worker_id,
                    "job_ids": [o.job.job_id for o in done],
                    "attempts": [o.job.attempt for o in done],
                    "results": [o.result for o in done],
                },
            ).scalars()
        )
    if bad:
        for job_id, state in conn.execute(
            sql.FAIL,
            {
                "worker_id": worker_id,
                "job_ids": [o.job.job_id for o in bad],
                "attempts": [o.job.attempt for o in bad],
                "messages": [o.message for o in bad],
                "tracebacks": [o.traceback for o in bad],
                "delays": [o.delay for o in bad],
                "discards": [o.discard for o in bad],
            },
        ):
            (failed if state == "failed" else retried).append(job_id)
    saved = {*succeeded, *retried, *failed}
    lost = [o for o in outcomes if o.job.job_id not in saved]
    return Saved(succeeded, retried, failed, lost)


def set_progress(
    conn: Connection, worker_id: str, job: Claimed, fraction: float | None, message: str | None
) -> bool:
    """Record a running job's progress; False if this worker no longer holds the job."""
    result = conn.execute(
        sql.SET_PROGRESS,
        {
            "progress": fraction,
            "message": message,
            "job_id": job.job_id,
            "attempt": job.attempt,
            "worker_id": worker_id,
        },
    )
    return bool(result.rowcount)


def _pairs(jobs: Iterable[Claimed]) -> dict[str, list[object]]:
    listed = list(jobs)
    return {"job_ids": [j.job_id for j in listed], "attempts": [j.attempt for j in listed]}


def heartbeat(conn: Connection, worker_id: str, jobs: Iterable[Claimed]) -> set[uuid.UUID]:
    """Refresh the worker's and its jobs' heartbeats; return the jobs it still holds."""
    conn.execute(sql.HEARTBEAT_WORKER, {"worker_id": worker_id})
    params = {"worker_id": worker_id, **_pairs(jobs)}
    return set(conn.execute(sql.HEARTBEAT_JOBS, params).scalars())


def release(conn: Connection, worker_id: str, jobs: Iterable[Claimed]) -> list[uuid.UUID]:
    """Hand unfinished jobs back to the queue (shutdown) and wake other workers."""
    released = list(conn.execute(sql.RELEASE, {"worker_id": worker_id, **_pairs(jobs)}).scalars())
    if released:
        notify(conn)
    return released


@dataclass(frozen=True)
class Rescued:
    job_id: uuid.UUID
    name: str
    state: str
    reason: str


def rescue(conn: Connection, *, grace: float, stale: float) -> list[Rescued]:
    """Take running jobs away from dead or frozen workers; forget dead workers."""
    params = {"grace": grace, "stale": stale, "namespace": sql.LOCK_NAMESPACE}
    rescued = [Rescued(*row) for row in conn.execute(sql.RESCUE, params)]
    conn.execute(sql.FORGET_DEAD_WORKERS, {"grace": grace, "namespace": sql.LOCK_NAMESPACE})
    if any(r.state == "queued" for r in rescued):
        notify(conn)
    return rescued


def notify(conn: Connection, queue: str = "") -> None:
    """Wake listening workers when the transaction commits (inserts notify by trigger)."""
    conn.execute(
        text("SELECT pg_notify(:channel, :queue)"), {"channel": NOTIFY_CHANNEL, "queue": queue}
    )


def register(
    conn: Connection,
    worker_id: str,
    *,
    kind: str,
    hostname: str,
    pid: int,
    queues: Sequence[str] | None,
    concurrency: int,
) -> int:
    """Record a live process and return the key of the life lock it must hold."""
    return int(
        conn.execute(
            sql.REGISTER_WORKER,
            {
                "worker_id": worker_id,
                "kind": kind,
                "hostname": hostname,
                "pid": pid,
                "queues": None if queues is None else list(queues),
                "concurrency": concurrency,
            },
        ).scalar_one()
    )


def unregister(conn: Connection, worker_id: str) -> None:
    conn.execute(sql.UNREGISTER_WORKER, {"worker_id": worker_id})
