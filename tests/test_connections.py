"""What each process holds of PostgreSQL's connections: a number an operator can add up.

A worker holds its presence, three connections of its own (loop, heartbeat,
promotions and progress) and the pool its handlers share (`WORKER_DB_POOL`,
one per slot by default); a web process one per thread (`WEB_DB_POOL`);
cron its presence and two. No pool overflows: a handler that finds every
connection in use waits for one. docs/operations.md turns these into the
sizing table; the figures printed here are the measured ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue_many, load_job_modules
from app.web import create_app
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.slow

WORKER_NAMES = ("pillars-worker-presence", "pillars-worker", "pillars")


def connections(engine: Engine, names: tuple[str, ...]) -> int:
    """Server sessions of this database opened under one of `names`."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = ANY(:names)"
                ),
                {"names": list(names)},
            ).scalar_one()
        )


@contextmanager
def peak(engine: Engine, names: tuple[str, ...]) -> Iterator[list[int]]:
    """Sample the sessions under `names` every 20 ms; the list holds the highest count seen."""
    seen = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            seen[0] = max(seen[0], connections(engine, names))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()


def hold_jobs(engine: Engine, count: int, seconds: float) -> None:
    with Session(engine) as session:
        enqueue_many(session, [JobRequest("connections.hold", {"seconds": seconds})] * count)
        session.commit()


def succeeded(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM jobs WHERE state = 'succeeded'")).scalar_one()
        )


@pytest.fixture
def worker_env(process_env: dict[str, str]) -> dict[str, str]:
    load_job_modules(["tests.connection_jobs"])
    return {**process_env, "JOB_MODULES": "tests.jobs,tests.connection_jobs"}


@pytest.mark.parametrize(
    ("concurrency", "pool", "bound"),
    [(10, None, 15), (10, 3, 8)],
    ids=["pool = slots", "pool of 3 for 10 slots"],
)
def test_a_worker_holds_at_most_its_handler_pool_and_five_connections(
    db: Engine,
    worker_env: dict[str, str],
    tmp_path: Path,
    concurrency: int,
    pool: int | None,
    bound: int,
) -> None:
    env = {**worker_env, **({"WORKER_DB_POOL": str(pool)} if pool else {})}
    log = tmp_path / "worker.log"
    with peak(db, WORKER_NAMES) as busy:
        worker = start("worker.py", env, "--concurrency", str(concurrency), log=log)
        try:
            wait_for(lambda: "started" in log.read_text(), what="the worker to start")
            wait_for(lambda: connections(db, WORKER_NAMES) >= 2, what="its connections")
            idle = connections(db, WORKER_NAMES)
            hold_jobs(db, 3 * concurrency, seconds=0.3)
            wait_for(lambda: succeeded(db) == 3 * concurrency, timeout=90, what="every job")
        finally:
            assert stop(worker) == 0
    print(f"worker, {concurrency} slots, WORKER_DB_POOL={pool}: idle {idle}, peak {busy[0]}")
    assert busy[0] <= bound


def test_a_web_process_pools_one_connection_per_thread_and_never_more(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: dict[str, tuple[int, int]] = {}
    for label, extra in (
        ("default", {}),
        ("threads", {"WEB_THREADS": "8"}),
        ("pool", {"WEB_DB_POOL": "2"}),
    ):
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        app: Flask = create_app({"TESTING": True})
        pool = app.extensions["pillars_engine"].pool
        sizes[label] = (pool.size(), pool._max_overflow)
        app.extensions["pillars_engine"].dispose()
    assert sizes == {"default": (4, 0), "threads": (8, 0), "pool": (2, 0)}


def test_a_cron_process_holds_its_presence_and_two_connections_at_most(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    names = ("pillars-cron-presence", "pillars-cron")
    log = tmp_path / "cron.log"
    with peak(db, names) as seen:
        cron = start("cron.py", process_env, log=log)
        try:
            wait_for(lambda: "registered" in log.read_text(), what="cron to register")
            wait_for(lambda: connections(db, names) >= 2, what="cron's first step")
        finally:
            assert stop(cron) == 0
    print(f"cron: peak {seen[0]}")
    assert seen[0] <= 3
