"""Throughput from 1 to 8 worker processes, and who is busy: Python or PostgreSQL.

`python3 dev.py bench --only curve`. Each point drains the same no-op backlog
with N default workers (concurrency 10) and reads, from /proc, the CPU time
the worker processes and the server's backends used meanwhile. Where the
backends' share keeps growing while the rate stops, the database (on this
machine: its two cores, its disk) is the limit, not the workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench import pillars

PROCESSES = (1, 2, 4, 8)


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


def point(target: pillars.Target, n: int, processes: int) -> tuple[float, float, float]:
    """(jobs/s, worker CPU cores, backend CPU cores) for `processes` default workers."""
    used: dict[str, float] = {}

    @contextmanager
    def measure(pids: list[int]) -> Iterator[None]:
        server = backends(target.dsn)
        workers, database, started = cpu_seconds(pids), cpu_seconds(server), time.monotonic()
        yield
        elapsed = time.monotonic() - started
        used["workers"] = (cpu_seconds(pids) - workers) / elapsed
        used["server"] = (cpu_seconds(server) - database) / elapsed

    drained = pillars.drain(target, n, pillars.Setup(processes=processes), measure)
    return drained.rate, used["workers"], used["server"]


def render(points: dict[int, tuple[float, float, float]]) -> str:
    lines = [f"{'worker processes (concurrency 10)':<34} {'jobs/s':>9} {'workers CPU':>12} "
             f"{'server CPU':>11}"]  # fmt: skip
    for processes, (rate, workers, server) in points.items():
        lines.append(f"{processes:<34} {rate:>9,.0f} {workers:>11.2f}c {server:>10.2f}c")
    return "\n".join(lines)
