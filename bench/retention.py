"""Days of traffic in the jobs table: `.venv/bin/python -m bench.retention [--rows N ...]`.

For each size, a fresh database on one embedded PostgreSQL (deleted at the
end) gets that many *finished* jobs, bulk-loaded as two weeks of history (finished evenly
over 14 days, 97 % succeeded, 2 % failed, 1 % cancelled, payloads and
results of a typical size), then VACUUM ANALYZE, as autovacuum would leave
it. Then:

* the worker's cycle (save 10 outcomes, claim 10) with 20,000 jobs queued,
* enqueue + commit, one job at a time, both also measured in the same
  database before the history was loaded (the ratio "x empty"),
* pruning one day of history (1/14 of the rows) the way `pillars.prune_jobs`
  does, in batches of 5,000, and
* the VACUUM that must follow, since every pruned row is a dead tuple.

Absolute figures drift on a shared machine; the ratios to the empty
table, measured minutes apart in the same database, are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, claims, enqueue, enqueue_many, load_job_modules, sql
from app.jobs.execution import Outcome

ROOT = Path(__file__).resolve().parent.parent
DAYS = 14
QUEUED = 20_000
PRUNE_BATCH = 5_000

# One chunk of history: `:rows` finished jobs whose finish times step evenly
# through the 14 days; ids are UUIDv7 like the queue's own.
FILL = text("""
INSERT INTO jobs (job_id, name, queue, state, payload, created_at, run_at, started_at,
                  finished_at, attempts, max_attempts, locked_by, last_error, errors, result)
SELECT pillars_uuidv7(), 'bench.job' || (g % 20),
       (ARRAY['default', 'reports', 'mail', 'bulk'])[1 + g % 4], s.state,
       jsonb_build_object('user_id', g % 100000, 'export_id', g, 'kind', 'monthly-report'),
       t.at - interval '3 seconds', t.at - interval '3 seconds', t.at - interval '1 second',
       t.at, CASE WHEN s.state = 'failed' THEN 5 ELSE 1 END, 5,
       'web-7:4242:a1b2c3',
       CASE WHEN s.state = 'failed' THEN 'RuntimeError: upstream said 503' END,
       CASE WHEN s.state = 'failed' THEN jsonb_build_array(jsonb_build_object(
           'attempt', 5, 'at', t.at, 'worker', 'web-7:4242:a1b2c3',
           'error', 'RuntimeError: upstream said 503', 'traceback', repeat('x', 400)))
            ELSE '[]'::jsonb END,
       CASE WHEN s.state = 'succeeded' THEN jsonb_build_object('export_id', g, 'bytes', 48213) END
FROM generate_series(:first, :last) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => :span * (1 - g / :total)) AS at) AS t
CROSS JOIN LATERAL (SELECT CASE WHEN g % 100 < 97 THEN 'succeeded'
                                WHEN g % 100 < 99 THEN 'failed'
                                ELSE 'cancelled' END AS state) AS s
""")

SIZES = text("""
SELECT pg_relation_size('jobs'), pg_indexes_size('jobs'), pg_total_relation_size('jobs')
""")


@dataclass
class Figures:
    rows: int
    fill_s: float = 0.0
    heap_mb: float = 0.0
    index_mb: float = 0.0
    #: The cycle and enqueue in the same database before the history was loaded.
    empty_cycle_p50_ms: float = 0.0
    empty_enqueue_per_s: float = 0.0
    cycle_p50_ms: float = 0.0
    cycle_p99_ms: float = 0.0
    enqueue_per_s: float = 0.0
    prune_s: float = 0.0
    prune_rows: int = 0
    prune_first_ms: float = 0.0
    prune_last_ms: float = 0.0
    vacuum_s: float = 0.0


def database(server: Any, name: str) -> Engine:
    """A fresh, migrated database `name` on `server`, with the benchmark's handlers loaded."""
    import os

    from dev import ensure_database

    url = ensure_database(server, name).replace("postgresql://", "postgresql+psycopg://")
    os.environ["DATABASE_URL"] = url
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    load_job_modules(["bench.jobs"])
    return create_engine(url, pool_size=2, max_overflow=0)


def autocommit(engine: Engine) -> Connection:
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def fill(engine: Engine, rows: int, figures: Figures) -> None:
    started = time.perf_counter()
    chunk = 1_000_000
    for first in range(1, rows + 1, chunk):
        with engine.begin() as conn:
            params = {
                "first": first,
                "last": min(rows, first + chunk - 1),
                "total": float(rows),
                "span": DAYS * 86_400.0,
            }
            conn.execute(FILL, params)
        print(f"  {min(rows, first + chunk - 1):,} of {rows:,} rows", flush=True)
    with autocommit(engine) as conn:
        conn.execute(text("VACUUM ANALYZE jobs"))
        heap, indexes, _ = conn.execute(SIZES).one()
    figures.fill_s = time.perf_counter() - started
    figures.heap_mb, figures.index_mb = heap / 2**20, indexes / 2**20


def cycles(engine: Engine, count: int) -> tuple[float, float]:
    """The worker's statement: save the last 10 claims as succeeded, claim 10 more.

    Returns its p50 and p99 in milliseconds.
    """
    with Session(engine) as session:
        enqueue_many(session, [JobRequest("bench.noop", {"n": n}) for n in range(QUEUED)])
        session.commit()
    with autocommit(engine) as conn:
        conn.execute(text("ANALYZE jobs"))
        held: list[Outcome] = []
        seconds = []
        for _ in range(count):
            started = time.perf_counter()
            done = claims.cycle(conn, "bench:1:000000", held, None, 10)
            seconds.append(time.perf_counter() - started)
            held = [Outcome(job, ok=True, result="null") for job in done.claimed]
        claims.cycle(conn, "bench:1:000000", held, None, 0)
    cuts = statistics.quantiles(seconds, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def enqueues(engine: Engine, count: int) -> float:
    """Enqueue + commit, one job at a time: jobs per second."""
    with engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for n in range(count):
            enqueue(session, "bench.noop", {"n": n})
            session.commit()
        return count / (time.perf_counter() - started)


def prune_one_day(engine: Engine, figures: Figures) -> None:
    """`pillars.prune_jobs` with the retention one day shorter: a day of history goes."""
    older_than = (DAYS - 1) * 86_400.0
    batches: list[float] = []
    started = time.perf_counter()
    while True:
        began = time.perf_counter()
        with engine.begin() as conn:
            count = int(
                conn.execute(
                    sql.PRUNE, {"older_than": older_than, "limit": PRUNE_BATCH}
                ).scalar_one()
            )
        batches.append(time.perf_counter() - began)
        figures.prune_rows += count
        if count < PRUNE_BATCH:
            break
    figures.prune_s = time.perf_counter() - started
    figures.prune_first_ms = batches[0] * 1000
    figures.prune_last_ms = (batches[-2] if len(batches) > 1 else batches[-1]) * 1000
    began = time.perf_counter()
    with autocommit(engine) as conn:
        conn.execute(text("VACUUM jobs"))
    figures.vacuum_s = time.perf_counter() - began


def measure(server: Any, rows: int, cycle_count: int, enqueue_count: int) -> Figures:
    """One database: the cycle and enqueue without history, then with `rows` of it, then
    a day's prune and the vacuum after it."""
    figures = Figures(rows)
    engine = database(server, f"retention_{rows}_{uuid.uuid4().hex[:6]}")
    try:
        figures.empty_cycle_p50_ms, _ = cycles(engine, cycle_count)
        figures.empty_enqueue_per_s = enqueues(engine, enqueue_count)
        print(f"loading {rows:,} finished jobs", flush=True)
        fill(engine, rows, figures)
        figures.cycle_p50_ms, figures.cycle_p99_ms = cycles(engine, cycle_count)
        figures.enqueue_per_s = enqueues(engine, enqueue_count)
        prune_one_day(engine, figures)
    finally:
        engine.dispose()
    return figures


def settings(server: Any) -> str:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'),"
            " current_setting('maintenance_work_mem'), current_setting('max_wal_size')"
        ).fetchone()
    assert row is not None
    return (
        f"PostgreSQL {row[0]}, shared_buffers {row[1]}, maintenance_work_mem {row[2]}, "
        f"max_wal_size {row[3]}"
    )


def render(results: list[Figures]) -> str:
    lines = [
        "| finished rows | fill + vacuum | heap | indexes | cycle p50 / p99 (x empty) | "
        "enqueue (x empty) | prune a day | batch first / last | vacuum after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in results:
        prune_rate = f.prune_rows / f.prune_s if f.prune_s else 0
        lines.append(
            f"| {f.rows:,} | {f.fill_s:.0f} s | {f.heap_mb:,.0f} MB | {f.index_mb:,.0f} MB | "
            f"{f.cycle_p50_ms:.2f} / {f.cycle_p99_ms:.2f} ms "
            f"({f.cycle_p50_ms / f.empty_cycle_p50_ms:.2f}x) | "
            f"{f.enqueue_per_s:,.0f}/s ({f.enqueue_per_s / f.empty_enqueue_per_s:.2f}x) | "
            f"{f.prune_rows:,} in {f.prune_s:.1f} s ({prune_rate:,.0f}/s) | "
            f"{f.prune_first_ms:.0f} / {f.prune_last_ms:.0f} ms | {f.vacuum_s:.1f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--cycles", type=int, default=2_000)
    parser.add_argument("--enqueues", type=int, default=2_000)
    args = parser.parse_args()
    from dev import embedded_server

    results = []
    with tempfile.TemporaryDirectory(prefix="pillars-retention-") as tmp:
        server = embedded_server(Path(tmp) / "pg", cleanup="delete")
        try:
            print(settings(server), flush=True)
            for rows in args.rows:
                results.append(measure(server, rows, args.cycles, args.enqueues))
                print(render(results), flush=True)
        finally:
            server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
