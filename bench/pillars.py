"""Pillars' figures: the same measurements as `bench.raw`, through the real API and processes.

Enqueues go through `app.jobs.enqueue`/`enqueue_many` in SQLAlchemy
sessions. Drains and pickups run real `worker.py` processes, started and
listening before the jobs are committed, so wake-up is part of what is
measured; the clock runs on the database, from the backlog's commit to the
last job's `finished_at`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings, normalize_database_url
from app.db import make_engine
from app.jobs import JobRequest, enqueue, enqueue_many, load_job_modules
from bench import processes, progress
from bench.measure import Drain, Pickup

ROOT = Path(__file__).resolve().parent.parent

# Backlogs are written in SQL: building 200,000 rows through enqueue_many is
# not what is measured, and the rows are the same as enqueue's (the table's
# defaults are the handler's: queue 'default', priority 0, 10 attempts).
FILL = """
INSERT INTO jobs (job_id, name, payload)
SELECT pillars_uuidv7(), 'bench.noop', jsonb_build_object('n', g)
FROM generate_series(1, %(n)s) AS g
"""

#: The same backlog spread over concurrency keys of limit 1 (flow control):
#: every job starts waiting and fresh, and the workers let them in.
FILL_KEYED = """
INSERT INTO jobs (job_id, name, payload, state, flow_key, flow_limit, flow_kind, flow_fresh)
SELECT pillars_uuidv7(), 'bench.noop', jsonb_build_object('n', g), 'waiting',
       'key:' || (g %% %(keys)s), 1, 'concurrency', true
FROM generate_series(1, %(n)s) AS g
"""

UNFINISHED = """
SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued')
   AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'running')
   AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting')
"""

TIMELINE = """
SELECT count(*),
       extract(epoch FROM percentile_disc(0.1) WITHIN GROUP (ORDER BY finished_at)),
       extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY finished_at)),
       extract(epoch FROM max(finished_at))
FROM jobs WHERE state = 'succeeded' AND name = 'bench.noop'
"""


@dataclass(frozen=True)
class Target:
    """The Pillars database of this run: a libpq DSN for polls, an engine for the API."""

    dsn: str
    url: str
    engine: Engine
    log_dir: Path


def prepare(dsn: str, log_dir: Path) -> Target:
    """Migrate the database to head and load the benchmark's handlers in this process."""
    url = normalize_database_url(dsn)
    os.environ["DATABASE_URL"] = url  # alembic/env.py reads Settings from the environment
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    load_job_modules(["bench.jobs"])
    engine = make_engine(Settings.from_env(), pool_size=2, application_name="bench")
    return Target(dsn, url, engine, log_dir)


def reset(target: Target) -> None:
    with target.engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs, workers, queue_limits"))


def enqueue_single(target: Target, n: int) -> float:
    """`enqueue` + `commit` per job on one connection; jobs/s."""
    reset(target)
    with target.engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for i in range(n):
            enqueue(session, "bench.noop", {"n": i})
            session.commit()
        return n / (time.perf_counter() - started)


def enqueue_batches(target: Target, n: int, batch: int = 1000) -> float:
    """`enqueue_many` of `batch` jobs + `commit` per call; jobs/s."""
    reset(target)
    with target.engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for first in range(0, n, batch):
            enqueue_many(
                session,
                [JobRequest("bench.noop", {"n": i}) for i in range(first, min(first + batch, n))],
            )
            session.commit()
        return n / (time.perf_counter() - started)


#: LOG_LEVEL of the workers a benchmark starts (`--worker-log-level`): the documented
#: INFO writes a line per finished attempt, WARNING shows what that line costs.
WORKER_LOG_LEVEL = "INFO"


@dataclass(frozen=True)
class Setup:
    """How the workers run: processes, `--concurrency` (None: the default), and
    WORKER_SYNCHRONOUS_COMMIT (None: the default)."""

    processes: int = 1
    concurrency: int | None = None
    synchronous_commit: bool | None = None

    def env(self, target: Target) -> dict[str, str]:
        extra = {
            "DATABASE_URL": target.url,
            "JOB_MODULES": "bench.jobs",
            "LOG_LEVEL": WORKER_LOG_LEVEL,
        }
        if self.synchronous_commit is not None:
            extra["WORKER_SYNCHRONOUS_COMMIT"] = "on" if self.synchronous_commit else "off"
        return processes.clean_environment(extra)

    def command(self) -> list[str]:
        extra = [] if self.concurrency is None else ["--concurrency", str(self.concurrency)]
        return [processes.python(), str(ROOT / "worker.py"), *extra]


def _listening(target: Target, count: int) -> bool:
    # A worker's row appears with its life lock held; its presence LISTENs
    # in the statement right after.
    found = progress.scalar(target.dsn, "SELECT count(*) FROM workers WHERE kind = 'worker'")
    return int(found or 0) >= count


def workers(target: Target, setup: Setup) -> AbstractContextManager[processes.Workers]:
    """Start `setup`'s worker processes; the caller waits with `ready`."""
    return processes.running(
        setup.command(), setup.env(target), setup.processes, target.log_dir, "pillars-worker"
    )


def ready(target: Target, group: processes.Workers, count: int) -> None:
    group.wait_for(lambda: _listening(target, count), "pillars listeners")


def commit_backlog(target: Target, n: int, keys: int = 0) -> float:
    """Insert `n` no-op jobs in one transaction; the database's clock just before COMMIT."""
    with psycopg.connect(target.dsn) as conn:
        conn.execute(FILL_KEYED if keys else FILL, {"n": n, "keys": keys})
        conn.execute("ANALYZE jobs")  # as the raw loop's table is; untimed
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
        conn.commit()
    assert row is not None
    return float(row[0])


#: Something to run around a drain, given the workers' process ids (a profiler).
Observer = Callable[[list[int]], AbstractContextManager[object]]


def drain(
    target: Target,
    n: int,
    setup: Setup,
    observe: Observer | None = None,
    *,
    keys: int = 0,
    queue_limit: int | None = None,
) -> Drain:
    """Work off `n` no-op jobs committed at once while the workers wait; the timeline.

    With `keys`, the jobs are spread over that many concurrency keys of limit
    1; with `queue_limit`, their queue may run at most that many at once.
    """
    reset(target)
    if queue_limit is not None:
        with target.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO queue_limits (queue, concurrency) VALUES ('default', :n)"),
                {"n": queue_limit},
            )
    with workers(target, setup) as group:
        ready(target, group, setup.processes)
        with observe(group.pids) if observe else nullcontext():
            started = commit_backlog(target, n, keys)
            progress.wait_until(
                target.dsn,
                UNFINISHED,
                workers=group,
                timeout=max(120.0, n / 50),
                what="pillars drain",
            )
    done, first, last, end = progress.row(target.dsn, TIMELINE)
    if done != n:
        raise RuntimeError(f"pillars drain: {done} of {n} jobs succeeded")
    return Drain(n, started, float(first), float(last), float(end))


def pickup(target: Target, rate: float, seconds: float, backlog: int = 0) -> tuple[Pickup, bool]:
    """Probe jobs at `rate`/s for `seconds` through a default worker; their pickup
    latency, and whether the `backlog` (drained meanwhile) lasted to the last probe.

    Latency is `bench.pickup`'s handler start minus the producer's clock just
    before `enqueue`. Probes have priority 1, so they overtake the backlog.
    """
    reset(target)
    total = max(1, round(rate * seconds))
    setup = Setup()
    with workers(target, setup) as group:
        ready(target, group, 1)
        if backlog:
            commit_backlog(target, backlog)
        with target.engine.connect() as conn, Session(conn) as session:
            started = time.perf_counter()
            for i in range(total):
                pause = started + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                enqueue(session, "bench.pickup", {"t": time.time()}, priority=1)
                session.commit()
        progress.wait_until(
            target.dsn,
            "SELECT count(*) >= %(total)s FROM jobs"
            " WHERE name = 'bench.pickup' AND state = 'succeeded'",
            {"total": total},
            workers=group,
            timeout=60 + seconds,
            what="pillars pickup",
        )
        lasted = backlog == 0 or bool(
            progress.scalar(target.dsn, "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued')")
        )
    with target.engine.connect() as conn:
        seconds_each = [
            float(v)
            for v in conn.execute(
                text(
                    "SELECT CAST(result AS double precision) FROM jobs"
                    " WHERE name = 'bench.pickup' AND state = 'succeeded'"
                )
            ).scalars()
        ]
    return Pickup.of(seconds_each), lasted
