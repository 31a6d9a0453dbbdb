"""The worker's side of the queue: claim, save outcomes, heartbeat, release, rescue.

Thin functions over the statements in `app.jobs.sql`. Each takes a
connection inside a transaction the caller owns, so the worker can save the
outcomes of finished jobs and claim the next ones in a single commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, exc, text

from app.config import Settings
from app.db import on_driver
from app.jobs import payloads, sql
from app.jobs.execution import Claimed, Outcome
from app.jobs.processes import NOTIFY_CHANNEL


@dataclass(frozen=True)
class Saved:
    """Which outcomes reached the database; the rest had lost their claim."""

    succeeded: list[uuid.UUID]
    retried: list[uuid.UUID]
    failed: list[uuid.UUID]
    lost: list[Outcome]


@dataclass(frozen=True)
class Cycle:
    """What one cycle did, and what it found left to do by other means."""

    saved: Saved
    claimed: list[Claimed]
    #: Waiting jobs are fresh: run `promote`.
    promote: bool = False
    #: Limited queues with due jobs: claim from them with `claim_limited`.
    limited: list[str] = field(default_factory=list)


def loop_connection(engine: Engine, settings: Settings) -> Connection:
    """A connection for a worker's loop, which runs nothing but `cycle` on it.

    Autocommit: each cycle is a single statement, so it needs no BEGIN and
    COMMIT round trips of its own. Generic plans: the cycle is prepared by
    psycopg after a few runs, and planning it anew for every LIMIT took
    longer than running it (`sql._CYCLE` is written to plan well without the
    values). No sequential scans: a generic plan is kept until the table's
    statistics change, and one made while the table was nearly empty read
    every row at each cycle once a burst came (57 ms a cycle at 120,000
    rows, until autovacuum analyzed the table); every part of the cycle has
    an index to walk. Behind a transaction pooler nothing is prepared, and a
    SET would leak to other clients' sessions. The caller invalidates the
    connection when done with it (`close_loop_connection`): these settings are the
    loop's alone.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    if not settings.behind_transaction_pooler:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql("SET enable_seqscan = off")
    if not settings.worker_synchronous_commit:
        conn.exec_driver_sql("SET synchronous_commit = off")
    return conn


def close_loop_connection(conn: Connection | None) -> None:
    """Close a `loop_connection` for good: back in the pool, its session settings would
    reach other statements."""
    if conn is None:
        return
    try:
        if not conn.invalidated:
            conn.invalidate()
        conn.close()
    except exc.SQLAlchemyError:
        pass


def cycle(
    conn: Connection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    queues: Sequence[str] | None,
    limit: int,
) -> Cycle:
    """Save `outcomes` and claim up to `limit` due jobs, in one statement.

    Claims take the highest priority first, then the longest due. Never
    raises for what a claimed row holds: a row that cannot be read comes
    back as a `Claimed` with its `problem`, to fail on its own. With no
    outcomes (an idle worker woken by a NOTIFY) the statement only claims:
    the outcome parts' nine empty arrays cost a pickup 0.1-0.2 ms.
    """
    done = [o for o in outcomes if o.ok]
    bad = [o for o in outcomes if not o.ok]
    params: dict[str, object] = {"worker_id": worker_id, "limit": max(0, limit)}
    if outcomes:
        params |= _completed(done) | _failed(bad)
        forms = (sql.CYCLE_ANY, sql.CYCLE_ONE_QUEUE, sql.CYCLE_QUEUES)
    else:
        forms = (sql.CLAIM_ANY, sql.CLAIM_ONE_QUEUE, sql.CLAIM_QUEUES)
    if queues is None:
        statement = forms[0]
    elif len(queues) == 1:
        statement, params["queue"] = forms[1], queues[0]
    else:
        statement, params["queues"] = forms[2], list(queues)
    saved: dict[uuid.UUID, str] = {}
    claimed: list[Claimed] = []
    promote, limited = False, []
    for row in on_driver(conn, sql.CYCLE_DRIVER[statement], params):
        kind = row[0]
        if kind == "saved":
            saved[row[1]] = row[2]
        elif kind == "claimed":
            claimed.append(claimed_row(row))
        elif kind == "promote":
            promote = True
        else:
            limited.append(row[5])
    return Cycle(
        Saved(
            succeeded=[o.job.job_id for o in done if o.job.job_id in saved],
            retried=[o.job.job_id for o in bad if saved.get(o.job.job_id) == "queued"],
            failed=[o.job.job_id for o in bad if saved.get(o.job.job_id) == "failed"],
            lost=[o for o in outcomes if o.job.job_id not in saved],
        ),
        claimed,
        promote,
        limited,
    )


def _completed(done: Sequence[Outcome]) -> dict[str, list[object]]:
    """The succeeded attempts, as the columns `sql._COMPLETE` unnests."""
    return {
        "done_ids": [o.job.job_id for o in done],
        "done_attempts": [o.job.attempt for o in done],
        "results": [o.result for o in done],
    }


def _failed(bad: Sequence[Outcome]) -> dict[str, list[object]]:
    """The failed attempts, as the columns `sql._FAIL` unnests."""
    return {
        "failed_ids": [o.job.job_id for o in bad],
        "failed_attempts": [o.job.attempt for o in bad],
        "messages": [o.message for o in bad],
        "tracebacks": [o.traceback for o in bad],
        "delays": [o.delay for o in bad],
        "discards": [o.discard for o in bad],
    }


def claimed_row(row: Sequence[Any]) -> Claimed:
    """A claimed row (`kind` then `sql.CYCLE_COLUMNS`) as the worker holds it,
    decoding what may not decode."""
    (
        _,
        job_id,
        _,
        name,
        text_payload,
        queue,
        attempts,
        max_attempts,
        epoch,
        zone,
        priority,
        waited,
        age,
        request_id,
        trace_context,
    ) = row
    payload, problem = payloads.decode(text_payload)
    scheduled_for = None
    if epoch is not None:
        try:
            scheduled_for = _occurrence(epoch, zone)
        except (ArithmeticError, ValueError, OSError) as exc:
            problem = problem or f"its occurrence time {epoch} cannot be read ({exc})"
    return Claimed(
        job_id,
        name,
        payload,
        queue,
        attempts,
        max_attempts,
        scheduled_for,
        problem,
        priority,
        waited=max(0.0, waited or 0.0),
        age=max(0.0, age or 0.0),
        request_id=request_id,
        trace_context=trace_context,
    )


def _occurrence(epoch: str, zone: str | None) -> datetime:
    """The occurrence from its epoch seconds, in the zone it was meant in when known."""
    moment = datetime.fromtimestamp(0, UTC) + timedelta(seconds=float(Decimal(epoch)))
    try:
        return moment.astimezone(ZoneInfo(zone)) if zone else moment
    except (ValueError, KeyError, OSError):  # a zone this machine does not know (or can't look up)
        return moment


#: Fresh jobs one promoter transaction looks at.
PROMOTE_BATCH = 200


def promote(engine: Engine) -> int:
    """Let in what fresh waiting jobs' keys have room for; returns how many were let in.

    One transaction: take a batch of fresh jobs, lock their keys, promote.
    """
    with engine.begin() as conn:
        taken = conn.execute(sql.TAKE_FRESH, {"limit": PROMOTE_BATCH}).scalars()
        keys = sorted({key for key in taken if key is not None})
        if not keys:
            return 0
        conn.execute(sql.LOCK_FLOW_KEYS, {"namespace": sql.FLOW_NAMESPACE, "keys": keys})
        return int(conn.execute(sql.PROMOTE, {"keys": keys}).scalar_one())


def claim_limited(engine: Engine, worker_id: str, queue: str, limit: int) -> list[Claimed]:
    """Claim up to `limit` jobs from a limited queue within its limits; [] if a peer is at it."""
    if limit <= 0:
        return []
    with engine.begin() as conn:
        if conn.execute(sql.LOCK_QUEUE_LIMIT, {"queue": queue}).first() is None:
            return []
        params = {"queue": queue, "limit": limit, "worker_id": worker_id}
        return [claimed_row(row) for row in conn.execute(sql.CLAIM_LIMITED, params)]


def claim(
    conn: Connection, worker_id: str, queues: Sequence[str] | None, limit: int
) -> list[Claimed]:
    """Lock up to `limit` due jobs for `worker_id` (not from limited queues)."""
    return cycle(conn, worker_id, (), queues, limit).claimed


def save_outcomes(conn: Connection, worker_id: str, outcomes: Sequence[Outcome]) -> Saved:
    """Record finished attempts, whatever their number, in one statement."""
    return cycle(conn, worker_id, outcomes, None, 0).saved


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
    """Refresh the held jobs' heartbeats; return those this worker still holds.

    The process's own heartbeat is its presence's (`app.jobs.processes`).
    """
    params = {"worker_id": worker_id, **_pairs(jobs)}
    return set(conn.execute(sql.HEARTBEAT_JOBS, params).scalars())


def let_go(conn: Connection, worker_id: str, jobs: Iterable[Claimed]) -> None:
    """Let go of jobs whose attempt ended here after they were cancelled (`sql.LET_GO`)."""
    conn.execute(sql.LET_GO, {"worker_id": worker_id, **_pairs(jobs)})


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


def rescue(
    conn: Connection,
    *,
    grace: float,
    stale: float,
    suspects: Sequence[str] = (),
    settle: float = 10.0,
    worker_id: str = "",
    held: Iterable[Claimed] = (),
    judge: bool = True,
) -> list[Rescued]:
    """Take running jobs away from dead or frozen workers; forget dead workers.

    `suspects` are workers the watcher saw without their life lock for a
    while: dead now unless they hold it again. `worker_id`'s own running
    jobs that are not `held` are strays. Without `judge`, only strays are
    taken back (see `sql.RESCUE`).
    """
    params = {
        "grace": grace,
        "stale": stale,
        "namespace": sql.LOCK_NAMESPACE,
        "suspects": list(suspects),
        "settle": settle,
        "worker_id": worker_id,
        "held": [job.job_id for job in held],
        "judge": judge,
    }
    rescued = [Rescued(*row) for row in conn.execute(sql.RESCUE, params)]
    if any(r.state == "queued" for r in rescued):
        notify(conn)
    return rescued


def notify(conn: Connection, queue: str = "") -> None:
    """Wake listening workers when the transaction commits (inserts notify by trigger)."""
    conn.execute(
        text("SELECT pg_notify(:channel, :queue)"), {"channel": NOTIFY_CHANNEL, "queue": queue}
    )


def lockless_workers(conn: Connection, *, settle: float = 10.0) -> set[str]:
    """Workers whose life lock nobody holds right now (see `sql.LOCKLESS_WORKERS`)."""
    params = {"settle": settle, "namespace": sql.LOCK_NAMESPACE}
    return set(conn.execute(sql.LOCKLESS_WORKERS, params).scalars())


def unregister(conn: Connection, worker_id: str) -> None:
    conn.execute(sql.UNREGISTER_WORKER, {"worker_id": worker_id})
