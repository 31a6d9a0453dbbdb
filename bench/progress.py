"""Waiting for a measured system to finish, without loading the database it works on.

One separate connection asks a yes/no question every 200 ms. The questions
are EXISTS probes over partial indexes (sequential scans are switched off
for this session only, so a probe never walks a table of finished rows);
the precise end of a drain is read afterwards from the rows' own
timestamps, so the polling period costs no accuracy.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.processes import Workers

EVERY = 0.2


def wait_until(
    dsn: str,
    question: str,
    params: dict[str, Any] | None = None,
    *,
    workers: Workers | None = None,
    timeout: float,
    what: str,
) -> None:
    """Poll `question` (one boolean) until true; raise if a worker dies or time runs out."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True, application_name="bench-progress") as conn:
        conn.execute("SET enable_seqscan = off")
        while True:
            row = conn.execute(question, params).fetchone()
            if row is not None and row[0]:
                return
            if workers is not None:
                workers.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not finish within {timeout:.0f}s")
            time.sleep(EVERY)


def scalar(dsn: str, query: str, params: dict[str, Any] | None = None) -> Any:
    """One value, on a connection of its own (for figures read after a measurement)."""
    with psycopg.connect(dsn, autocommit=True, application_name="bench-progress") as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def row(dsn: str, query: str, params: dict[str, Any] | None = None) -> tuple[Any, ...]:
    with psycopg.connect(dsn, autocommit=True, application_name="bench-progress") as conn:
        found = conn.execute(query, params).fetchone()
    if found is None:
        raise RuntimeError(f"no row from {query!r}")
    return tuple(found)
