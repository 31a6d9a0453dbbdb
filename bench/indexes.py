"""What an index on jobs costs the queue: `.venv/bin/python -m bench.indexes payload|name`.

One embedded server (deleted at the end), three databases migrated to head
that differ only in the index measured:

* `payload`, the dashboard's payload search: none, the one it uses (a
  partial GIN over finished jobs, `ix_jobs_payload_finished`), and a GIN
  over every row;
* `name`, the job-name index the name filter, per-name counts and the
  orphaned-name check read: none, the one they use (`ix_jobs_name_newest`,
  every job but the running ones, so a claim adds no entry), and the same
  over every row.

Each starts with `--finished` finished jobs, vacuumed, so the indexes have
their size. Each round, per database in turn (interleaved, so a shared
machine's drift hits all three alike):

* enqueue `--jobs` jobs with `enqueue_many` in batches of 1,000, payloads
  shaped like the site's (`report_id`, `user_id`, `region`);
* drain them with the worker's own statement (`claims.cycle`: save 50
  outcomes and claim 50 more in one autocommit statement, as a worker
  with 50 free threads does, `synchronous_commit` off), handlers excluded:
  this is the database's share of a job's life, where an index costs.

Rates on a shared machine drift by several per cent from round to round;
the WAL each database writes per job (`pg_current_wal_lsn()` before and
after, the bytes every index entry costs in writes, replication and
backups) and the index's size at the end do not. Prints each round, then
the medians and the ratios to "none".
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.config import normalize_database_url
from app.jobs import JobRequest, enqueue_many, job
from app.jobs.claims import cycle
from app.jobs.execution import Outcome
from bench.admin import ROOT

#: Per index measured: the prefix of its name, and its variants (SQL run after
#: the migrations; None leaves the index as the migrations make it).
INDEXES: dict[str, tuple[str, dict[str, str | None]]] = {
    "payload": (
        "ix_jobs_payload",
        {
            "none": "DROP INDEX ix_jobs_payload_finished",
            "partial (finished)": None,
            "full": (
                "DROP INDEX ix_jobs_payload_finished;"
                " CREATE INDEX ix_jobs_payload_all ON jobs USING gin (payload jsonb_path_ops)"
            ),
        },
    ),
    "name": (
        "ix_jobs_name",
        {
            "none": "DROP INDEX ix_jobs_name_newest",
            "at rest (not running)": None,
            "full": (
                "DROP INDEX ix_jobs_name_newest;"
                " CREATE INDEX ix_jobs_name_all ON jobs (name, job_id DESC)"
            ),
        },
    ),
}
BATCH = 50
NAME = "bench.report_like"


@job(NAME)
def report_like(report_id: int, user_id: int, region: str) -> None:
    """Never run here: its signature checks the payloads enqueued."""


FINISHED = text("""
INSERT INTO jobs (name, payload, state, started_at, finished_at, attempts)
SELECT 'bench.report_like',
       jsonb_build_object('report_id', g % 5000, 'user_id', g % 700,
                          'region', (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4]),
       'succeeded', now(), now(), 1
FROM generate_series(1, :n) AS g
""")


def databases(server: object, variants: dict[str, str | None], finished: int) -> dict[str, Engine]:
    from alembic import command
    from alembic.config import Config

    from dev import ensure_database

    engines = {}
    for number, (name, change) in enumerate(variants.items()):
        url = normalize_database_url(ensure_database(server, f"bench_index_{number}"))
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["configure_logger"] = False
        config.set_main_option("sqlalchemy.url", url)
        os.environ["DATABASE_URL"] = url
        command.upgrade(config, "head")
        engine = create_engine(url, connect_args={"application_name": "bench-index"})
        with engine.begin() as conn:
            if change:
                for statement in change.split(";"):
                    conn.execute(text(statement))
            conn.execute(FINISHED, {"n": finished})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE jobs"))
        engines[name] = engine
    return engines


def wal(engine: Engine) -> int:
    """The server's WAL position in bytes (one server: the databases share it, so measure alone)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'")).scalar_one())


def index_size(engine: Engine, prefix: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("""
                SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index
                WHERE indrelid = CAST('jobs' AS regclass)
                  AND indexrelid::regclass::text LIKE :prefix || '%'
            """),
                {"prefix": prefix},
            ).scalar_one()
        )


def enqueue(engine: Engine, jobs: int, offset: int) -> float:
    requests = [
        JobRequest(
            NAME,
            {"report_id": n % 5000, "user_id": n % 700, "region": ("north", "south")[n % 2]},
        )
        for n in range(offset, offset + jobs)
    ]
    started = time.perf_counter()
    for start in range(0, jobs, 1000):
        with Session(engine) as session:
            enqueue_many(session, requests[start : start + 1000])
            session.commit()
    return jobs / (time.perf_counter() - started)


def drain(engine: Engine, jobs: int) -> float:
    done = 0
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET synchronous_commit = off"))
        while True:
            result = cycle(conn, "bench-worker", outcomes, None, BATCH)
            saved, claimed = result.saved, result.claimed
            done += len(saved.succeeded)
            if not claimed and not outcomes:
                break
            outcomes = [Outcome(job=job, ok=True, result="null") for job in claimed]
    elapsed = time.perf_counter() - started
    assert done == jobs, (done, jobs)
    return jobs / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", choices=sorted(INDEXES), help="the index to measure")
    parser.add_argument("--jobs", type=int, default=20_000, help="enqueued and drained per round")
    parser.add_argument("--finished", type=int, default=200_000, help="finished jobs present")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from dev import embedded_server

    with tempfile.TemporaryDirectory(prefix="pillars-bench-index-") as tmp:
        server = embedded_server(Path(tmp) / "pg", cleanup="delete")
        prefix, variants = INDEXES[args.index]
        engines = databases(server, variants, args.finished)
        figures: dict[str, dict[str, list[float]]] = {
            name: {"enqueue": [], "drain": [], "wal": []} for name in engines
        }
        for round_number in range(args.rounds):
            for name, engine in engines.items():
                before = wal(engine)
                enqueued = enqueue(engine, args.jobs, round_number * args.jobs)
                drained = drain(engine, args.jobs)
                written = (wal(engine) - before) / args.jobs
                figures[name]["enqueue"].append(enqueued)
                figures[name]["drain"].append(drained)
                figures[name]["wal"].append(written)
                print(
                    f"round {round_number + 1} {name:<21} enqueue {enqueued:>8,.0f} jobs/s"
                    f"   drain {drained:>8,.0f} jobs/s   WAL {written:>6,.0f} bytes/job",
                    flush=True,
                )
        parts = ("enqueue", "drain", "wal")
        base = {part: statistics.median(figures["none"][part]) for part in parts}
        print(
            f"\nmedians of {args.rounds} rounds, {args.jobs:,} jobs each,"
            f" beside {args.finished:,} finished jobs:"
        )
        for name in figures:
            line = [f"{name:<21}"]
            for part in parts:
                median = statistics.median(figures[name][part])
                unit = "bytes/job" if part == "wal" else "jobs/s"
                line.append(f"{part} {median:>7,.0f} {unit} ({median / base[part]:.2f})")
            size = index_size(engines[name], prefix) / 2**20
            print("   ".join(line) + f"   {args.index} index {size:.1f} MiB")
        for engine in engines.values():
            engine.dispose()
        server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
