"""pgqueuer's figures, as an in-run peer: the same measurements through its documented API.

Enqueues go through `Queries.enqueue` on an asyncpg connection (one job per
call, and lists of 1,000). Drains and pickups run worker processes
(`bench/pgq_app.py`, what `pgq run` runs), listening before the backlog is committed; the clock
runs on the database, from the backlog's commit to the last `successful`
entry of `pgqueuer_log` (pgqueuer deletes a finished job and logs it).

Two configurations: its defaults (`run()` as documented: batch 10, no task
cap, tables as installed) and the best one found on this machine, named in
`BEST` (the asyncpg driver is its documented fastest; `pgq autovac` is its
documented tuning for the queue table).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pgqueuer import Queries

from bench import processes, progress
from bench.measure import Drain, Pickup

TABLES = "pgqueuer, pgqueuer_log, pgqueuer_statistics"

UNFINISHED = "SELECT NOT EXISTS (SELECT 1 FROM pgqueuer)"

TIMELINE = """
SELECT count(*),
       extract(epoch FROM percentile_disc(0.1) WITHIN GROUP (ORDER BY created)),
       extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY created)),
       extract(epoch FROM max(created))
FROM pgqueuer_log WHERE status = 'successful' AND entrypoint = 'noop'
"""


@dataclass(frozen=True)
class Setup:
    """How pgqueuer's workers run: processes, `--batch-size`, `--max-concurrent-tasks`
    (None: no cap, its default) and whether `pgq autovac` tuned its tables."""

    processes: int = 1
    batch_size: int = 10
    max_concurrent_tasks: int | None = None
    autovac: bool = False

    def describe(self) -> str:
        cap = f", at most {self.max_concurrent_tasks} tasks" if self.max_concurrent_tasks else ""
        tuned = ", pgq autovac" if self.autovac else ""
        return f"{self.processes} process(es), batch {self.batch_size}{cap}{tuned}"


DEFAULTS = Setup()
#: Two processes (as Pillars' best row) at the batch size where its drain rate
#: stopped growing in trials here (2 x 50,000 jobs each: batch 10 2.6k/s, 50
#: 8k/s, 100 13k/s, 200 11-18k/s, 500 15k/s, 1000 15k/s), with `pgq autovac`.
#: A task cap (`max_concurrent_tasks`) only slowed it down.
BEST = Setup(processes=2, batch_size=500, autovac=True)


@dataclass(frozen=True)
class Target:
    dsn: str
    log_dir: Path


async def _queries(dsn: str) -> tuple[asyncpg.Connection, Queries]:
    connection = await asyncpg.connect(dsn)
    return connection, Queries.from_asyncpg_connection(connection)


def prepare(dsn: str, log_dir: Path) -> Target:
    """Install pgqueuer's schema into its database."""

    async def install() -> None:
        connection, queries = await _queries(dsn)
        try:
            await queries.install()
        finally:
            await connection.close()

    asyncio.run(install())
    return Target(dsn, log_dir)


def reset(target: Target, autovac: bool) -> None:
    """Empty pgqueuer's tables and apply (or roll back) its autovacuum tuning."""

    async def run() -> None:
        connection, queries = await _queries(target.dsn)
        try:
            await connection.execute(f"TRUNCATE {TABLES}")
            if autovac:
                await queries.optimize_autovacuum()
            else:
                await queries.optimize_autovacuum_rollback()
        finally:
            await connection.close()

    asyncio.run(run())


def enqueue_single(target: Target, n: int) -> float:
    """`enqueue` of one job per call (its own transaction); jobs/s."""
    reset(target, autovac=False)

    async def run() -> float:
        connection, queries = await _queries(target.dsn)
        try:
            started = time.perf_counter()
            for i in range(n):
                await queries.enqueue("noop", b'{"n": %d}' % i)
            return n / (time.perf_counter() - started)
        finally:
            await connection.close()

    return asyncio.run(run())


def enqueue_batches(target: Target, n: int, batch: int = 1000) -> float:
    """`enqueue` of lists of `batch` jobs per call; jobs/s."""
    reset(target, autovac=False)

    async def run() -> float:
        connection, queries = await _queries(target.dsn)
        try:
            started = time.perf_counter()
            for first in range(0, n, batch):
                ids = range(first, min(first + batch, n))
                await queries.enqueue(
                    ["noop"] * len(ids), [b'{"n": %d}' % i for i in ids], [0] * len(ids)
                )
            return n / (time.perf_counter() - started)
        finally:
            await connection.close()

    return asyncio.run(run())


def _command(setup: Setup) -> list[str]:
    cap = [] if setup.max_concurrent_tasks is None else ["--max-concurrent-tasks"]
    cap += [] if setup.max_concurrent_tasks is None else [str(setup.max_concurrent_tasks)]
    return [processes.python(), "-m", "bench.pgq_app", "--batch-size", str(setup.batch_size), *cap]


def _ready(folder: Path, count: int) -> bool:
    return len(list(folder.glob("ready-*"))) >= count


async def _commit_backlog(dsn: str, n: int) -> float:
    """Enqueue `n` no-op jobs in one transaction; the database's clock just before COMMIT."""
    connection, queries = await _queries(dsn)
    try:
        async with connection.transaction():
            for first in range(0, n, 50_000):
                ids = range(first, min(first + 50_000, n))
                await queries.enqueue(
                    ["noop"] * len(ids), [b'{"n": %d}' % i for i in ids], [0] * len(ids)
                )
            await connection.execute("ANALYZE pgqueuer")  # as the raw loop's table is
            started: float = await connection.fetchval(
                "SELECT extract(epoch FROM clock_timestamp())::float8"
            )
        return started
    finally:
        await connection.close()


def _folder(target: Target) -> Path:
    folder = target.log_dir / f"pgq-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    return folder


def drain(target: Target, n: int, setup: Setup) -> Drain:
    """Work off `n` no-op jobs committed at once while the workers wait; the timeline."""
    reset(target, setup.autovac)
    folder = _folder(target)
    env = processes.clean_environment({"BENCH_PGQ_DSN": target.dsn, "BENCH_PGQ_DIR": str(folder)})
    with processes.running(_command(setup), env, setup.processes, folder, "pgq") as group:
        group.wait_for(lambda: _ready(folder, setup.processes), "pgqueuer listeners")
        started = asyncio.run(_commit_backlog(target.dsn, n))
        progress.wait_until(
            target.dsn, UNFINISHED, workers=group, timeout=max(120.0, n / 50), what="pgq drain"
        )
    done, first, last, end = progress.row(target.dsn, TIMELINE)
    if done != n:
        raise RuntimeError(f"pgqueuer drain: {done} of {n} jobs logged successful")
    return Drain(n, started, float(first), float(last), float(end))


async def _probe(dsn: str, rate: float, total: int) -> None:
    connection, queries = await _queries(dsn)
    try:
        started = time.perf_counter()
        for i in range(total):
            pause = started + i / rate - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            await queries.enqueue("pickup", repr(time.time()).encode(), priority=1)
    finally:
        await connection.close()


def pickup(
    target: Target, rate: float, seconds: float, backlog: int = 0, setup: Setup = DEFAULTS
) -> tuple[Pickup, bool]:
    """Probe jobs at `rate`/s for `seconds`; their pickup latency (handler start minus the
    producer's clock before `enqueue`), and whether the `backlog` lasted to the last probe."""
    reset(target, setup.autovac)
    total = max(1, round(rate * seconds))
    folder = _folder(target)
    env = processes.clean_environment({"BENCH_PGQ_DSN": target.dsn, "BENCH_PGQ_DIR": str(folder)})
    with processes.running(_command(setup), env, setup.processes, folder, "pgq") as group:
        group.wait_for(lambda: _ready(folder, setup.processes), "pgqueuer listeners")
        if backlog:
            asyncio.run(_commit_backlog(target.dsn, backlog))
        asyncio.run(_probe(target.dsn, rate, total))
        progress.wait_until(
            target.dsn,
            "SELECT NOT EXISTS (SELECT 1 FROM pgqueuer WHERE entrypoint = 'pickup')",
            workers=group,
            timeout=60 + seconds,
            what="pgq pickup",
        )
        lasted = backlog == 0 or bool(
            progress.scalar(
                target.dsn, "SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE entrypoint = 'noop')"
            )
        )
    latencies = [
        value for report in folder.glob("pickup-*.json") for value in json.loads(report.read_text())
    ]
    if len(latencies) != total:
        raise RuntimeError(f"pgqueuer picked up {len(latencies)} of {total} probes")
    return Pickup.of(latencies), lasted
