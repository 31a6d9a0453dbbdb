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


@dataclass(frozen=True)
class Saved:
    """Which outcomes reached the database; the rest had lost their claim."""

    succeeded: list[uuid.UUID]
    retried: list[uuid.UUID]
    failed: list[uuid.UUID]
    lost: list[Outcome]


def cycle(
    conn: Connection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    queues: Sequence[str] | None,
    limit: int,
) -> tuple[Saved, list[Claimed]]:
    """Save `outcomes` and claim up to `limit` due jobs, in one statement.

    Claims take the highest priority first, then the longest due.
    """
    done = [o for o in outcomes if o.ok]
    bad = [o for o in outcomes if not o.ok]
    params: dict[str, object] = {
        "worker_id": worker_id,
        "limit": max(0, limit),
        "done_ids": [o.job.job_id for o in done],
        "done_attempts": [o.job.attempt for o in done],
        "results": [o.result for o in done],
        "failed_ids": [o.job.job_id for o in bad],
        "failed_attempts": [o.job.attempt for o in bad],
        "messages": [o.message for o in bad],
        "tracebacks": [o.traceback for o in bad],
        "delays": [o.delay for o in bad],
        "discards": [o.discard for o in bad],
    }
    if queues is None:
        statement = sql.CYCLE_ANY
    elif len(queues) == 1:
        statement, params["queue"] = sql.CYCLE_ONE_QUEUE, queues[0]
    else:
        statement, params["queues"] = sql.CYCLE_QUEUES, list(queues)
    saved: dict[uuid.UUID, str] = {}
    claimed: list[Claimed] = []
    for row in conn.execute(statement, params):
        if row.kind == "saved":
            saved[row.job_id] = row.state
        else:
            claimed.append(
                Claimed(
                    row.job_id,
                    row.name,
                    row.payload,
                    row.queue,
                    row.attempts,
                    row.max_attempts,
                    row.scheduled_for,
                )
            )
    return Saved(
        succeeded=[o.job.job_id for o in done if o.job.job_id in saved],
        retried=[o.job.job_id for o in bad if saved.get(o.job.job_id) == "queued"],
        failed=[o.job.job_id for o in bad if saved.get(o.job.job_id) == "failed"],
        lost=[o for o in outcomes if o.job.job_id not in saved],
    ), claimed


def claim(
    conn: Connection, worker_id: str, queues: Sequence[str] | None, limit: int
) -> list[Claimed]:
    """Lock up to `limit` due jobs for `worker_id`."""
    return cycle(conn, worker_id, (), queues, limit)[1]


def save_outcomes(conn: Connection, worker_id: str, outcomes: Sequence[Outcome]) -> Saved:
    """Record finished attempts, whatever their number, in one statement."""
    return cycle(conn, worker_id, outcomes, None, 0)[0]


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
    job_names: Sequence[str] = (),
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
                "job_names": list(job_names),
            },
        ).scalar_one()
    )


def unregister(conn: Connection, worker_id: str) -> None:
    conn.execute(sql.UNREGISTER_WORKER, {"worker_id": worker_id})
