"""What the `jobs` table itself costs an enqueue: `.venv/bin/python -m bench.floor`.

The benchmark's enqueue rows compare Pillars with hand-written psycopg
loops into `raw_jobs`, a table with two indexes. A queued job in `jobs`
adds four index entries (`pk_jobs`, `ix_jobs_claim`, `ix_jobs_claim_queue`,
`ix_jobs_name_newest`), a wider row and the insert trigger that wakes
workers, each there for a guarantee or a page. This measures the
benchmark's own loops (`bench.raw`) into `raw_jobs`, the same loops into
`jobs` (only `job_id`, `name` and `payload` given, the rest by the table's
defaults), and Pillars' own `enqueue` and `enqueue_many`, interleaved round by
round on one server:

* one job per transaction: `BEGIN; INSERT; COMMIT` on one connection,
  microseconds a job (Pillars: `enqueue` + `session.commit()`);
* a batch: one COPY of `--batch` rows and its commit, jobs a second
  (Pillars: `enqueue_many` of `--batch`, which goes by COPY).

The ratios `raw_jobs`/`jobs` are the ceiling any queue keeping this table
could reach against the raw loops. Without `--database-url` the run has an
embedded server of its own; with it, databases of its own on that server
(`bench.server`), dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many
from app.jobs.ids import new_job_id
from bench import pillars, raw, server

INSERT_JOBS = "INSERT INTO jobs (job_id, name, payload) VALUES (%s, %s, %s)"


def _truncate_jobs(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs")


def insert_each(dsn: str, n: int) -> float:
    """`raw.enqueue_single`'s loop into `jobs`: `n` single-row transactions; µs a job."""
    _truncate_jobs(dsn)
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for i in range(n):
            conn.execute(INSERT_JOBS, (new_job_id(), "noop", Jsonb({"n": i})))
            conn.commit()
        return (time.perf_counter() - started) / n * 1e6


def copy_batch(dsn: str, n: int) -> float:
    """`raw.enqueue_copy`'s COPY into `jobs`: one COPY of `n` rows and its commit; jobs/s."""
    _truncate_jobs(dsn)
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        with cursor.copy("COPY jobs (job_id, name, payload) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((new_job_id(), "noop", Jsonb({"n": i})))
        conn.commit()
        return n / (time.perf_counter() - started)


def pillars_each(target: pillars.Target, n: int) -> float:
    """`enqueue` + `session.commit()` per job; µs a job."""
    pillars.reset(target)
    with target.engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for i in range(n):
            enqueue(session, "bench.noop", {"n": i})
            session.commit()
        return (time.perf_counter() - started) / n * 1e6


def pillars_batch(target: pillars.Target, n: int) -> float:
    """`enqueue_many` of `n` jobs and its commit; jobs/s."""
    pillars.reset(target)
    with target.engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        enqueue_many(session, [JobRequest("bench.noop", {"n": i}) for i in range(n)])
        session.commit()
        return n / (time.perf_counter() - started)


def run(raw_dsn: str, target: pillars.Target, rounds: int, each: int, batch: int) -> list[str]:
    """Measure every figure `rounds` times, interleaved; the report's lines."""
    jobs_dsn = target.dsn
    measures: dict[str, Callable[[], float]] = {
        "insert raw_jobs": lambda: 1e6 / raw.enqueue_single(raw_dsn, each),
        "insert jobs": lambda: insert_each(jobs_dsn, each),
        "enqueue": lambda: pillars_each(target, each),
        "COPY raw_jobs": lambda: raw.enqueue_copy(raw_dsn, batch, batch),
        "COPY jobs": lambda: copy_batch(jobs_dsn, batch),
        "enqueue_many": lambda: pillars_batch(target, batch),
    }
    figures: dict[str, list[float]] = {name: [] for name in measures}
    lines = []
    for number in range(1, rounds + 1):
        for name, measure in measures.items():
            figures[name].append(measure())
        shown = ", ".join(f"{name} {values[-1]:,.0f}" for name, values in figures.items())
        lines.append(f"round {number}: {shown}")
    m = {name: statistics.median(values) for name, values in figures.items()}
    lines += [
        f"one per transaction, µs a job (medians of {rounds}; {each:,} jobs each):",
        f"  raw_jobs {m['insert raw_jobs']:,.0f}  jobs {m['insert jobs']:,.0f}"
        f"  enqueue {m['enqueue']:,.0f}",
        f"  rate against raw_jobs: jobs {m['insert raw_jobs'] / m['insert jobs']:.2f}"
        f"  enqueue {m['insert raw_jobs'] / m['enqueue']:.2f}"
        f"  (enqueue against jobs {m['insert jobs'] / m['enqueue']:.2f})",
        f"one COPY of {batch:,}, jobs/s (medians of {rounds}):",
        f"  raw_jobs {m['COPY raw_jobs']:,.0f}  jobs {m['COPY jobs']:,.0f}"
        f"  enqueue_many {m['enqueue_many']:,.0f}",
        f"  rate against raw_jobs: jobs {m['COPY jobs'] / m['COPY raw_jobs']:.2f}"
        f"  enqueue_many {m['enqueue_many'] / m['COPY raw_jobs']:.2f}"
        f"  (enqueue_many against jobs {m['enqueue_many'] / m['COPY jobs']:.2f})",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a server to make databases on (default: embedded)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--each", type=int, default=2_000, help="jobs one at a time, per round")
    parser.add_argument("--batch", type=int, default=10_000, help="jobs in one COPY")
    args = parser.parse_args()
    with (
        server.databases(args.database_url) as made,
        tempfile.TemporaryDirectory(prefix="pillars-bench-floor-") as logs,
    ):
        target = pillars.prepare(made.dsn("pillars"), Path(logs))
        for line in run(made.dsn("raw"), target, args.rounds, args.each, args.batch):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
