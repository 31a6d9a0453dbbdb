"""Throughput from 1 to 8 worker processes, and who is busy: Python or PostgreSQL.

`python3 dev.py bench --only curve`. Each point drains the same no-op backlog
with N workers, at the default concurrency 10 and at 50, and reads, from
/proc, the CPU time the worker processes and the server's backends used
meanwhile, and the writing transactions per second (transaction ids handed
out; each commit of one is a WAL flush with synchronous_commit on). Where the rate stops
growing while neither side uses its cores, the limit is the commit, not
Python; where the backends' share grows and the rate does not, it is the
database's CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench import pillars, progress

PROCESSES = (1, 2, 4, 8)
CONCURRENCIES = (10, 50)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far; gone ones count 0."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def backends(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'pillars%'"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def commits(dsn: str) -> int:
    """The next transaction id: how many writing transactions began so far, read without
    taking one (pg_stat_database would do, but busy backends report to it late)."""
    return int(progress.scalar(dsn, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))


Point = tuple[float, float, float, float]


def point(target: pillars.Target, n: int, processes: int, concurrency: int) -> Point:
    """(jobs/s, worker CPU cores, backend CPU cores, commits/s) for `processes` workers."""
    used: dict[str, float] = {}

    @contextmanager
    def measure(pids: list[int]) -> Iterator[None]:
        server = backends(target.dsn)
        workers, database, started = cpu_seconds(pids), cpu_seconds(server), time.monotonic()
        committed = commits(target.dsn)
        yield
        elapsed = time.monotonic() - started
        used["workers"] = (cpu_seconds(pids) - workers) / elapsed
        used["server"] = (cpu_seconds(server) - database) / elapsed
        used["commits"] = (commits(target.dsn) - committed) / elapsed

    setup = pillars.Setup(processes=processes, concurrency=concurrency)
    drained = pillars.drain(target, n, setup, measure)
    return drained.rate, used["workers"], used["server"], used["commits"]


def render(points: dict[tuple[int, int], Point]) -> str:
    lines = [f"{'worker processes x concurrency':<31} {'jobs/s':>9} {'workers CPU':>12} "
             f"{'server CPU':>11} {'commits/s':>10}"]  # fmt: skip
    for (processes, concurrency), (rate, workers, server, committed) in points.items():
        lines.append(
            f"{f'{processes} x {concurrency}':<31} {rate:>9,.0f} {workers:>11.2f}c"
            f" {server:>10.2f}c {committed:>10,.0f}"
        )
    return "\n".join(lines)
