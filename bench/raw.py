"""Raw-SQL baseline for the Pillars benchmark.

Pillars keeps its job queue in PostgreSQL. How fast that queue can be is bounded by
PostgreSQL itself and by the machine it runs on, so absolute numbers from the project's own
benchmark mean little on their own. This module measures what a minimal, hand-written
psycopg 3 job loop achieves on the same machine and in the same run, so the project's
figures can be reported as ratios against it.

It deliberately has no framework, no ORM and no retries: one table (``raw_jobs``), a
partial index on queued rows, ``FOR UPDATE SKIP LOCKED`` claims and ``LISTEN/NOTIFY``
wake-ups. Anything the project adds on top of that shows up as the gap to these figures.

Every function takes a plain libpq connection string, for example
``postgresql://postgres@/postgres?host=/tmp/pg`` (not an SQLAlchemy ``+psycopg`` URL).

Run it on its own with::

    python bench/raw.py postgresql://user@host:5432/dbname
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import sys
import time
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event, Semaphore

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

CHANNEL = "raw_jobs"

# How long helper processes may take to connect and report ready before we give up.
STARTUP_TIMEOUT = 30.0
# Extra time the latency consumer keeps going after the producer's last job.
LATENCY_GRACE = 10.0
# A drain that runs slower than this many jobs/s (or longer than DRAIN_MIN_TIMEOUT seconds,
# whichever is later) is treated as stuck.
DRAIN_MIN_RATE = 100.0
DRAIN_MIN_TIMEOUT = 60.0

CLAIM_SQL = """
UPDATE raw_jobs SET state = 'running', locked_by = %s
WHERE id IN (
    SELECT id FROM raw_jobs
    WHERE state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""

# Same claim as CLAIM_SQL, also returning the producer's enqueue time from the payload.
CLAIM_WITH_TIME_SQL = """
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

FINISH_SQL = "UPDATE raw_jobs SET state = 'succeeded' WHERE id = ANY(%s)"

INSERT_SQL = "INSERT INTO raw_jobs (name, payload) VALUES (%s, %s)"


def setup(dsn: str) -> None:
    """Drop and recreate the ``raw_jobs`` table and its partial index."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_jobs")
        conn.execute(
            """
            CREATE TABLE raw_jobs (
                id bigserial PRIMARY KEY,
                name text,
                payload jsonb,
                priority int DEFAULT 0,
                run_at timestamptz DEFAULT now(),
                created_at timestamptz DEFAULT now(),
                state text DEFAULT 'queued',
                locked_by text
            )
            """
        )
        conn.execute(
            "CREATE INDEX raw_jobs_queued_idx ON raw_jobs (priority DESC, run_at)"
            " WHERE state = 'queued'"
        )


def enqueue_single(dsn: str, n: int) -> float:
    """Insert ``n`` jobs, one row per transaction; return jobs per second."""
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        for i in range(n):
            conn.execute(INSERT_SQL, ("noop", Jsonb({"i": i})))
            conn.commit()
        elapsed = time.perf_counter() - start
    return n / elapsed


def enqueue_bulk(dsn: str, n: int, batch: int = 1000) -> float:
    """Insert ``n`` jobs with ``executemany`` in batches, one commit per batch; return jobs/s."""
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            for first in range(0, n, batch):
                rows = [("noop", Jsonb({"i": i})) for i in range(first, min(first + batch, n))]
                cur.executemany(INSERT_SQL, rows)
                conn.commit()
        elapsed = time.perf_counter() - start
    return n / elapsed


def enqueue_copy(dsn: str, n: int) -> float:
    """Insert ``n`` jobs with a single ``COPY``; return jobs per second."""
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY raw_jobs (name, payload) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row(("noop", Jsonb({"i": i})))
        conn.commit()
        elapsed = time.perf_counter() - start
    return n / elapsed


def _reset_and_fill(dsn: str, n: int) -> None:
    """Empty the table and insert ``n`` queued no-op jobs (not part of any timing).

    The ANALYZE gives the claim query the same plan whether or not autovacuum is running.
    """
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE raw_jobs RESTART IDENTITY")
        with conn.cursor() as cur:
            with cur.copy("COPY raw_jobs (name, payload) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row(("noop", Jsonb({"i": i})))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE raw_jobs")


def _stop(procs: list[SpawnProcess]) -> None:
    """Terminate whichever started processes are still running, then reap them all."""
    started = [proc for proc in procs if proc.pid is not None]
    for proc in started:
        if proc.is_alive():
            proc.terminate()
    for proc in started:
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _drain_worker(dsn: str, batch: int, ready: Semaphore, go: Event) -> None:
    """Claim and finish jobs until a claim comes back empty.

    Connects first, reports ready and waits for the start signal, so that connecting is not
    part of the timing.
    """
    worker_id = f"raw-{os.getpid()}"
    with psycopg.connect(dsn) as conn:
        ready.release()
        if not go.wait(timeout=STARTUP_TIMEOUT):
            raise RuntimeError("no start signal")
        while True:
            ids = [row[0] for row in conn.execute(CLAIM_SQL, (worker_id, batch)).fetchall()]
            conn.commit()
            if not ids:
                break
            conn.execute(FINISH_SQL, (ids,))
            conn.commit()


def drain(dsn: str, n: int, processes: int, batch: int = 50) -> float:
    """Process ``n`` queued no-op jobs with ``processes`` worker processes; return jobs/s.

    The table is emptied and refilled first, untimed. Timing runs from the moment every
    worker is connected and released until the last one has exited.
    """
    _reset_and_fill(dsn, n)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    procs = [
        ctx.Process(target=_drain_worker, args=(dsn, batch, ready, go), daemon=True)
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            proc.start()
        startup_deadline = time.monotonic() + STARTUP_TIMEOUT
        for _ in range(processes):
            while not ready.acquire(timeout=0.1):
                if time.monotonic() > startup_deadline or not all(p.is_alive() for p in procs):
                    raise RuntimeError("drain workers did not start")
        go.set()
        start = time.perf_counter()
        # Generous upper bound so a stuck worker cannot hang the benchmark.
        finish_deadline = time.monotonic() + max(DRAIN_MIN_TIMEOUT, n / DRAIN_MIN_RATE)
        for proc in procs:
            proc.join(timeout=max(0.0, finish_deadline - time.monotonic()))
        elapsed = time.perf_counter() - start
        if any(proc.is_alive() for proc in procs):
            raise RuntimeError("drain workers did not finish in time")
    finally:
        _stop(procs)
    failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if failed:
        raise RuntimeError(f"drain workers failed with exit codes {failed}")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM raw_jobs WHERE state = 'succeeded'").fetchone()
    done = row[0] if row else 0
    if done != n:
        raise RuntimeError(f"drain finished {done} of {n} jobs")
    return n / elapsed


def _claim_due(
    conn: psycopg.Connection[TupleRow],
    worker_id: str,
    latencies: list[float],
    deadline: float,
) -> None:
    """Claim and finish due jobs until none are left, recording each job's pickup latency."""
    while time.time() < deadline:
        rows = conn.execute(CLAIM_WITH_TIME_SQL, (worker_id, 50)).fetchall()
        got = time.time()
        conn.commit()
        if not rows:
            return
        latencies.extend(got - enqueued for _, enqueued in rows)
        conn.execute(FINISH_SQL, ([job_id for job_id, _ in rows],))
        conn.commit()


def _latency_consumer(
    dsn: str,
    deadline: float,
    ready: Event,
    produced: Event,
    results: Queue[list[float]],
) -> None:
    """LISTEN for new jobs, claim them and send back how long each took to reach us.

    Wakes on every notification, or after 1 s without one. Stops once the producer is done
    and everything has been claimed, or at ``deadline``, whichever comes first.
    """
    worker_id = f"raw-{os.getpid()}"
    latencies: list[float] = []
    with (
        psycopg.connect(dsn, autocommit=True) as listener,
        psycopg.connect(dsn) as conn,
    ):
        listener.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while time.time() < deadline:
            # Read the flag before claiming: if it was already set, this claim sees every job.
            finished = produced.is_set()
            _claim_due(conn, worker_id, latencies, deadline)
            if finished:
                break
            wait = min(1.0, max(0.0, deadline - time.time()))
            for _ in listener.notifies(timeout=wait, stop_after=1):
                pass
    results.put(latencies)


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(len(sorted_values) * pct / 100))
    return sorted_values[rank - 1]


def pickup_latency(dsn: str, rate: float, seconds: float) -> tuple[float, float]:
    """Enqueue jobs at ``rate`` per second for ``seconds``; return (p50_ms, p99_ms) pickup.

    Latency is the consumer's ``time.time()`` when its claim returned the row minus the
    producer's ``time.time()`` taken just before the row's transaction, which also sends
    ``NOTIFY raw_jobs``. Both run on this machine, so the clocks agree.
    """
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE raw_jobs RESTART IDENTITY")
        conn.commit()
    total = max(1, round(rate * seconds))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    produced = ctx.Event()
    results: Queue[list[float]] = ctx.Queue()
    deadline = time.time() + STARTUP_TIMEOUT + seconds + LATENCY_GRACE
    consumer = ctx.Process(
        target=_latency_consumer,
        args=(dsn, deadline, ready, produced, results),
        daemon=True,
    )
    try:
        consumer.start()
        while not ready.wait(timeout=0.1):
            if not consumer.is_alive() or time.time() > deadline:
                raise RuntimeError("latency consumer did not start listening")
        with psycopg.connect(dsn) as conn:
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                conn.execute(INSERT_SQL, ("noop", Jsonb({"t": time.time()})))
                conn.execute(f"NOTIFY {CHANNEL}")
                conn.commit()
        produced.set()
        while True:
            try:
                latencies = results.get(timeout=0.1)
                break
            except queue.Empty:
                if not consumer.is_alive() and results.empty():
                    raise RuntimeError(
                        f"latency consumer exited with code {consumer.exitcode}"
                    ) from None
                if time.time() > deadline + 5.0:
                    raise RuntimeError("latency consumer did not finish in time") from None
        consumer.join(timeout=5.0)
    finally:
        _stop([consumer])
    if len(latencies) != total:
        raise RuntimeError(f"latency consumer picked up {len(latencies)} of {total} jobs")
    latencies.sort()
    return _percentile(latencies, 50) * 1000, _percentile(latencies, 99) * 1000


def main(argv: list[str]) -> int:
    """Measure every figure once against the database in ``argv[1]`` and print it."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} DSN", file=sys.stderr)
        return 2
    dsn = argv[1]

    setup(dsn)
    print(f"enqueue, one row per transaction: {enqueue_single(dsn, 2_000):>10,.0f} jobs/s")
    setup(dsn)
    print(f"enqueue, executemany batch 1000:  {enqueue_bulk(dsn, 50_000):>10,.0f} jobs/s")
    setup(dsn)
    print(f"enqueue, COPY:                    {enqueue_copy(dsn, 100_000):>10,.0f} jobs/s")
    for processes in sorted({1, os.cpu_count() or 1}):
        setup(dsn)
        rate = drain(dsn, 20_000, processes)
        print(f"drain, batch 50, {processes} process(es):   {rate:>10,.0f} jobs/s")
    setup(dsn)
    p50, p99 = pickup_latency(dsn, 100.0, 5.0)
    print(f"NOTIFY pickup at 100/s:           p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
