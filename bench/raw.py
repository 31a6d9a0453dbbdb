"""The raw-SQL baseline: what hand-written psycopg loops get out of the same server.

How fast a queue in PostgreSQL can be is bounded by PostgreSQL and by the
machine, so Pillars' figures are reported as ratios against these loops,
measured in the same run. No framework, no ORM, no retries, no fencing: one
table (`raw_jobs`), a partial index on queued rows, `FOR UPDATE SKIP LOCKED`
claims and LISTEN/NOTIFY wake-ups. Whatever a queue adds on top shows up as
the gap to these figures.

Every function takes a libpq connection string (not an SQLAlchemy URL).
Drains and pickups run their consumers as spawned processes, connected
before the clock starts.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event, Semaphore

import psycopg
from psycopg.types.json import Jsonb

from bench.measure import Drain, Pickup, drain_from_batches

CHANNEL = "raw_jobs"
STARTUP_TIMEOUT = 30.0

INSERT = "INSERT INTO raw_jobs (name, payload, priority) VALUES (%s, %s, %s)"

# The classic loop: lock one job, run it, mark it done, commit; the row lock
# is held while the job runs, so one transaction per job.
TAKE_ONE = """
SELECT id, payload FROM raw_jobs
WHERE state = 'queued' AND run_at <= now()
ORDER BY priority DESC, run_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
DONE_ONE = "UPDATE raw_jobs SET state = 'succeeded' WHERE id = %s"

# The batched loop: claim up to N in one committed statement, run them,
# mark them all done in a second.
CLAIM = """
UPDATE raw_jobs SET state = 'running', locked_by = %s
WHERE id IN (
    SELECT id FROM raw_jobs
    WHERE state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, (payload ->> 't')::float8
"""
DONE = "UPDATE raw_jobs SET state = 'succeeded' WHERE id = ANY(%s)"


def setup(dsn: str) -> None:
    """Create (or recreate) `raw_jobs` and its partial claim index."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_jobs")
        conn.execute(
            """
            CREATE TABLE raw_jobs (
                id bigserial PRIMARY KEY,
                name text NOT NULL,
                payload jsonb NOT NULL,
                priority int NOT NULL DEFAULT 0,
                run_at timestamptz NOT NULL DEFAULT now(),
                created_at timestamptz NOT NULL DEFAULT now(),
                state text NOT NULL DEFAULT 'queued',
                locked_by text
            )
            """
        )
        conn.execute(
            "CREATE INDEX raw_jobs_queued ON raw_jobs (priority DESC, run_at)"
            " WHERE state = 'queued'"
        )


def _rate(n: int, started: float) -> float:
    return n / (time.perf_counter() - started)


def enqueue_single(dsn: str, n: int) -> float:
    """BEGIN; INSERT; COMMIT per job on one connection (psycopg sends the BEGIN); jobs/s."""
    setup(dsn)
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for i in range(n):
            conn.execute(INSERT, ("noop", Jsonb({"n": i}), 0))
            conn.commit()
        return _rate(n, started)


def enqueue_executemany(dsn: str, n: int, batch: int = 1000) -> float:
    """`executemany` of `batch` rows, one commit per batch; jobs/s."""
    setup(dsn)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for first in range(0, n, batch):
            rows = [("noop", Jsonb({"n": i}), 0) for i in range(first, min(first + batch, n))]
            cur.executemany(INSERT, rows)
            conn.commit()
        return _rate(n, started)


def enqueue_copy(dsn: str, n: int, batch: int = 10_000) -> float:
    """COPY of `batch` rows, one commit per batch; jobs/s."""
    setup(dsn)
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        _copy(conn, range(n), batch)
        return _rate(n, started)


def _copy(conn: psycopg.Connection[tuple[object, ...]], ids: range, batch: int) -> None:
    with conn.cursor() as cur:
        for first in range(ids.start, ids.stop, batch):
            with cur.copy("COPY raw_jobs (name, payload) FROM STDIN") as copy:
                for i in range(first, min(first + batch, ids.stop)):
                    copy.write_row(("noop", Jsonb({"n": i})))
            conn.commit()


def fill(dsn: str, n: int) -> None:
    """A fresh table with `n` queued no-op jobs at priority 0, analyzed (untimed)."""
    setup(dsn)
    with psycopg.connect(dsn) as conn:
        _copy(conn, range(n), 50_000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE raw_jobs")


def _drain_worker(
    dsn: str, batch: int, ready: Semaphore, go: Event, report: Queue[list[tuple[float, int]]]
) -> None:
    """Work jobs off until a claim comes back empty; report (done at, jobs) per commit."""
    done: list[tuple[float, int]] = []
    with psycopg.connect(dsn) as conn:
        ready.release()
        if not go.wait(STARTUP_TIMEOUT):
            raise RuntimeError("no start signal")
        while True:
            if batch == 1:
                row = conn.execute(TAKE_ONE).fetchone()
                if row is None:
                    break
                conn.execute(DONE_ONE, (row[0],))
                conn.commit()
                done.append((time.time(), 1))
                continue
            ids = [r[0] for r in conn.execute(CLAIM, ("raw", batch)).fetchall()]
            conn.commit()
            if not ids:
                break
            conn.execute(DONE, (ids,))
            conn.commit()
            done.append((time.time(), len(ids)))
    report.put(done)


def _start(procs: list[SpawnProcess], ready: Semaphore) -> None:
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for _ in procs:
        while not ready.acquire(timeout=0.1):
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                raise RuntimeError("raw workers did not start")


def _stop(procs: list[SpawnProcess]) -> None:
    for proc in procs:
        if proc.pid is not None and proc.is_alive():
            proc.terminate()
        if proc.pid is not None:
            proc.join(5)


def drain(dsn: str, n: int, processes: int, batch: int) -> Drain:
    """Work off a backlog of `n` jobs with `processes` loops claiming `batch` at a time.

    `batch=1` is the one-job-per-transaction loop. The clock starts when every
    loop is connected and released, and stops at the last commit.
    """
    fill(dsn, n)
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    report: Queue[list[tuple[float, int]]] = ctx.Queue()
    procs = [
        ctx.Process(target=_drain_worker, args=(dsn, batch, ready, go, report), daemon=True)
        for _ in range(processes)
    ]
    try:
        _start(procs, ready)
        started = time.time()
        go.set()
        batches = [pair for _ in procs for pair in report.get(timeout=max(120.0, n / 100))]
    finally:
        _stop(procs)
    result = drain_from_batches(started, batches)
    if result.jobs != n:
        raise RuntimeError(f"raw drain finished {result.jobs} of {n} jobs")
    return result


def _consumer(
    dsn: str, probes: int, ready: Event, report: Queue[list[float]], deadline: float
) -> None:
    """LISTEN; claim 50 at a time in priority order until every probe job was picked up."""
    latencies: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as conn:
        listener.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while len(latencies) < probes and time.time() < deadline:
            rows = conn.execute(CLAIM, ("raw", 50)).fetchall()
            conn.commit()
            got = time.time()  # the claim is committed: a handler could start now
            if rows:
                latencies.extend(got - t for _, t in rows if t is not None)
                conn.execute(DONE, ([job_id for job_id, _ in rows],))
                conn.commit()
                continue
            for _ in listener.notifies(timeout=1.0, stop_after=1):
                pass
    report.put(latencies)


def pickup(dsn: str, rate: float, seconds: float, backlog: int = 0) -> tuple[Pickup, bool]:
    """Enqueue probe jobs at `rate`/s for `seconds`; their pickup latency, and whether
    the `backlog` of no-op jobs (drained meanwhile) lasted until the last probe.

    A probe's latency is the consumer's clock once its claim has committed (the
    earliest a handler could start, where Pillars and pgqueuer take theirs)
    minus the producer's clock just before its INSERT, committed with a NOTIFY.
    Probes have priority 1, so with a backlog they wait only for the batch in
    hand.
    """
    fill(dsn, backlog)
    total = max(1, round(rate * seconds))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    report: Queue[list[float]] = ctx.Queue()
    deadline = time.time() + STARTUP_TIMEOUT + seconds * 3 + 30
    consumer = ctx.Process(
        target=_consumer, args=(dsn, total, ready, report, deadline), daemon=True
    )
    try:
        consumer.start()
        if not ready.wait(STARTUP_TIMEOUT):
            raise RuntimeError("raw pickup consumer did not start")
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            for i in range(total):
                pause = started + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                conn.execute(INSERT, ("probe", Jsonb({"t": time.time()}), 1))
                conn.execute(f"NOTIFY {CHANNEL}")
                conn.commit()
        latencies = report.get(timeout=max(1.0, deadline - time.time()))
    finally:
        _stop([consumer])
    if len(latencies) != total:
        raise RuntimeError(f"raw consumer picked up {len(latencies)} of {total} probes")
    return Pickup.of(latencies), backlog == 0 or _queued(dsn)


def _queued(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM raw_jobs WHERE state = 'queued')")
        return bool(row.fetchone() == (True,))
