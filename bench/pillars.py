"""Pillars' own figures: the same measurements as `bench.raw`, through the real API.

Enqueues go through `app.jobs.enqueue`/`enqueue_many` in SQLAlchemy sessions;
drains and pickups through real `worker.py` processes, started before the
jobs arrive so that wake-up is part of what is measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many

ROOT = Path(__file__).resolve().parent.parent


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE jobs, workers"))


def enqueue_single(engine: Engine, n: int) -> float:
    """One job per transaction on one connection, like the raw loop it is compared with."""
    reset(engine)
    with engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for _ in range(n):
            enqueue(session, "bench.noop", {})
            session.commit()
        return n / (time.perf_counter() - started)


def enqueue_bulk(engine: Engine, n: int, batch: int = 1000) -> float:
    reset(engine)
    requests = [JobRequest("bench.noop")] * batch
    with engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for _ in range(n // batch):
            enqueue_many(session, requests)
            session.commit()
        return (n // batch * batch) / (time.perf_counter() - started)


@contextmanager
def workers(url: str, processes: int, concurrency: int) -> Iterator[None]:
    """Run `processes` worker processes until the block ends."""
    env = {**os.environ, "DATABASE_URL": url, "JOB_MODULES": "bench.jobs", "LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=env,
        )
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_registered(engine: Engine, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM workers")).scalar_one() >= count:
                time.sleep(0.5)  # let listeners reach LISTEN
                return
        time.sleep(0.1)
    raise RuntimeError(f"{count} worker(s) did not start within {timeout}s")


def _count(engine: Engine, state: str) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM jobs WHERE state = :state")
        return int(conn.execute(query, {"state": state}).scalar_one())


def drain(engine: Engine, url: str, n: int, processes: int, concurrency: int) -> float:
    """Jobs/s from the commit of `n` no-op jobs until every one has succeeded."""
    reset(engine)
    with workers(url, processes, concurrency):
        _wait_registered(engine, processes)
        with Session(engine) as session:
            for _ in range(n // 5000):
                enqueue_many(session, [JobRequest("bench.noop")] * 5000)
            session.flush()
            started = time.perf_counter()
            session.commit()
        deadline = time.monotonic() + max(120.0, n / 100)
        while _count(engine, "succeeded") < n // 5000 * 5000:
            if time.monotonic() > deadline:
                raise RuntimeError("drain did not finish")
            time.sleep(0.01)
        return (n // 5000 * 5000) / (time.perf_counter() - started)


def pickup_latency(engine: Engine, url: str, rate: float, seconds: float) -> tuple[float, float]:
    """p50/p99 ms from an enqueue's commit to its handler starting, at `rate` jobs/s."""
    reset(engine)
    total = int(rate * seconds)
    with workers(url, 1, 10):
        _wait_registered(engine, 1)
        with engine.connect() as conn, Session(conn) as session:
            started = time.perf_counter()
            for i in range(total):
                pause = started + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                enqueue(session, "bench.pickup", {"t": time.time()})
                session.commit()
        deadline = time.monotonic() + 30
        while _count(engine, "succeeded") < total and time.monotonic() < deadline:
            time.sleep(0.05)
    with engine.connect() as conn:
        values = sorted(
            float(v)
            for v in conn.execute(
                text("SELECT CAST(result AS double precision) FROM jobs WHERE state = 'succeeded'")
            ).scalars()
        )
    if len(values) < total:
        raise RuntimeError(f"only {len(values)} of {total} jobs were picked up")
    return values[len(values) // 2] * 1000, values[
        min(len(values) - 1, int(len(values) * 0.99))
    ] * 1000
