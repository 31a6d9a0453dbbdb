"""Scenario 10: a fleet of worker machines on one small PostgreSQL, through PgBouncer.

40 worker processes of 25 slots each (1,000 slots), whose handlers each
write to the database, against a server with `max_connections = 50`,
through PgBouncer in transaction mode with a pool of 20 server
connections: every job is done (duplicates counted), nobody sees a
connection error, and a kill -9 storm is survived. The same fleet straight
at the server fails, and must fail clearly: the refusals are named in the
workers' logs with what to do, every worker still stops when told, and no
job is lost. The short version (in the normal suite) runs 8 processes.
"""

from __future__ import annotations

import itertools
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.config import normalize_database_url
from app.jobs import JobRequest, enqueue, enqueue_many, load_job_modules
from tests.faults.conftest import ROOT, Row
from tests.faults.harness import Fleet, books, long_run
from tests.faults.server import PrivateServer
from tests.pgbouncer import PgBouncer
from tests.processes import wait_for

pytestmark = pytest.mark.faults

MAX_CONNECTIONS = 50
POOL = 20
SLOTS = 25
_numbers = itertools.count()
#: What a worker logs when the database refuses it or goes away.
CONNECTION_TROUBLE = re.compile(
    r"too many clients|remaining connection slots|database unavailable|connection lost"
    r"|connection failed|Traceback"
)


#: The worker's own machinery, as opposed to a handler's failure (logged with its traceback).
OWN_LOGGER = re.compile(r"app\.jobs\.(worker|heartbeat|processes):")


class SmallServer(PrivateServer):
    """The suite's private server, with room for `max_connections` sessions only."""

    def __init__(self, root: Path, max_connections: int) -> None:
        super().__init__(root)
        self.max_connections = max_connections

    def start(self) -> None:
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=on"
            f" -c max_connections={self.max_connections}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")


@pytest.fixture(scope="module")
def small_server() -> Iterator[SmallServer]:
    server = SmallServer(Path(tempfile.mkdtemp(prefix="pillars-fleet-")), MAX_CONNECTIONS)
    server.init().start()
    yield server
    server.stop()
    server.remove()


@dataclass
class FleetDatabase:
    url: str
    engine: Engine


@pytest.fixture
def fleet_db(small_server: SmallServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FleetDatabase]:
    """A fresh, migrated database on the small server; the test holds two sessions of it."""
    name = f"fleet_{next(_numbers)}"
    with psycopg.connect(small_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = normalize_database_url(small_server.url(name))
    monkeypatch.setenv("DATABASE_URL", url)  # alembic/env.py reads it
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    load_job_modules(["tests.faults.jobs", "tests.faults.fleet_jobs"])
    engine = create_engine(url, pool_size=2, max_overflow=0, pool_pre_ping=True)
    yield FleetDatabase(url, engine)
    engine.dispose()


@dataclass(frozen=True)
class Size:
    processes: int
    jobs: int
    storm: int

    @property
    def slots(self) -> int:
        return self.processes * SLOTS


def size() -> Size:
    return Size(40, 50_000, 10) if long_run() else Size(8, 3_000, 3)


def fleet_env(base: dict[str, str], url: str) -> dict[str, str]:
    return {
        **base,
        "DATABASE_URL": url,
        "JOB_MODULES": "tests.faults.jobs,tests.faults.fleet_jobs",
        # Forty processes share two cores here: a beat may be late by a second.
        "WORKER_HEARTBEAT_INTERVAL": "1",
        "WORKER_STALE_TIMEOUT": "10",
        "WORKER_SHUTDOWN_GRACE": "5",
        "WORKER_POLL_INTERVAL": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


def enqueue_work(engine: Engine, total: int, ledger: Path) -> None:
    with Session(engine) as session:
        for first in range(0, total, 5_000):
            enqueue_many(
                session,
                [
                    JobRequest(
                        "fleet.work",
                        {"n": n, "seconds": random.uniform(0.05, 0.5), "ledger": str(ledger)},
                    )
                    for n in range(first, min(total, first + 5_000))
                ],
            )
            session.commit()


class Watch(threading.Thread):
    """Samples server sessions every 0.25 s and enqueues a pickup probe every 0.1 s."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.peak = 0
        self.probes = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn, Session(conn) as session:
            tick = 0
            while not self.stopping.wait(0.1):
                # Ahead of the backlog: the probe measures how soon a free slot claims.
                enqueue(session, "faults.pickup", {"t": time.time()}, priority=10)
                session.commit()
                self.probes += 1
                tick += 1
                if tick % 3 == 0:
                    sessions = conn.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE backend_type = 'client backend'"
                        )
                    ).scalar_one()
                    conn.commit()
                    self.peak = max(self.peak, int(sessions))


def probes_done(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs WHERE name = 'faults.pickup' AND state = 'succeeded'"
                )
            ).scalar_one()
        )


def pickups(engine: Engine) -> tuple[float, float]:
    """p50 and p99 of the probes' pickup latency, in milliseconds."""
    with engine.connect() as conn:
        seconds = sorted(
            float(r)
            for r in conn.execute(
                text("SELECT result FROM jobs WHERE name = 'faults.pickup' AND state = 'succeeded'")
            ).scalars()
        )
    if not seconds:
        return 0.0, 0.0
    cuts = statistics.quantiles(seconds, n=100) if len(seconds) > 1 else [seconds[0]] * 99
    return cuts[49] * 1000, cuts[98] * 1000


def throughput(engine: Engine) -> float:
    """Work jobs per second, first start to last finish."""
    with engine.connect() as conn:
        count, seconds = conn.execute(
            text(
                "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))"
                " FROM jobs WHERE name = 'fleet.work' AND state = 'succeeded'"
            )
        ).one()
    return float(count) / float(seconds or 1)


def troubles(logs: Path) -> list[str]:
    return [
        line
        for log in sorted(logs.glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if CONNECTION_TROUBLE.search(line)
    ]


def registered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM workers WHERE kind = 'worker'")).scalar_one()
        )


def work_done(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs WHERE name = 'fleet.work'"
                    " AND state IN ('succeeded', 'failed')"
                )
            ).scalar_one()
        )


def test_a_fleet_of_many_slots_shares_a_small_server_through_pgbouncer(
    fleet_db: FleetDatabase,
    small_server: SmallServer,
    fault_env: dict[str, str],
    tmp_path: Path,
    report: list[Row],
) -> None:
    shape = size()
    bouncer = PgBouncer(fleet_db.url, pool_size=POOL, max_client_conn=2_000).start()
    ledger = tmp_path / "ledger"
    env = {
        **fleet_env(fault_env, bouncer.url(str(fleet_db.engine.url.database))),
        "DATABASE_POOL_MODE": "transaction",
    }
    enqueue_work(fleet_db.engine, shape.jobs, ledger)
    watch = Watch(fleet_db.engine)
    fleet = Fleet(env, shape.processes, tmp_path, "--concurrency", str(SLOTS))
    waiting = 0
    try:
        wait_for(
            lambda: registered(fleet_db.engine) == shape.processes, timeout=300, what="the fleet"
        )
        watch.start()
        wait_for(
            lambda: work_done(fleet_db.engine) >= shape.jobs * 0.4,
            timeout=600,
            what="the fleet to get going",
        )
        for _ in range(shape.storm):
            fleet.kill_random()
            time.sleep(0.2)
        while work_done(fleet_db.engine) < shape.jobs:
            waiting = max(waiting, sum(int(p["cl_waiting"]) for p in bouncer.show("POOLS")))
            time.sleep(0.5)
        time.sleep(3.0)  # a few seconds of an idle fleet: pickup without a backlog
        watch.stopping.set()
        watch.join()
        # The last probe may be enqueued a moment before the fleet is told to stop:
        # a stopping worker claims nothing, so the probe would stay queued.
        wait_for(
            lambda: probes_done(fleet_db.engine) == watch.probes,
            timeout=60,
            what="the last probes",
        )
    finally:
        watch.stopping.set()
        watch.join()
        fleet.close()
        bouncer.remove()
    enqueued = shape.jobs + watch.probes
    result = books(fleet_db.engine, enqueued, ledger)
    p50, p99 = pickups(fleet_db.engine)
    rate = throughput(fleet_db.engine)
    trouble = troubles(tmp_path)
    bound = shape.storm * SLOTS
    report.append(
        Row(
            "10 fleet through PgBouncer",
            f"{shape.processes}x{SLOTS} slots, {shape.jobs} jobs + {watch.probes} probes, "
            f"max_connections {MAX_CONNECTIONS}, pool {POOL}",
            f"kill -9 storm of {shape.storm}",
            enqueued,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            f"{result.duplicates} (bound {bound})",
            f"pickup p50 {p50:.0f} ms p99 {p99:.0f} ms; {rate:.0f} jobs/s; "
            f"{watch.peak} server sessions at most, {waiting} clients waiting at most; "
            f"{len(trouble)} connection errors",
        )
    )
    assert result.lost == 0 and result.states["succeeded"] == enqueued
    assert set(result.executions) == set(range(shape.jobs))
    assert result.duplicates <= bound
    assert trouble == []
    assert watch.peak <= MAX_CONNECTIONS


def failed_attempts(engine: Engine) -> int:
    """Attempts that failed for want of a connection (each one is retried with backoff)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs, jsonb_array_elements(errors) AS e"
                    " WHERE e ->> 'error' LIKE '%too many clients%'"
                )
            ).scalar_one()
        )


def test_the_same_fleet_straight_at_the_server_fails_clearly_and_loses_nothing(
    fleet_db: FleetDatabase,
    fault_env: dict[str, str],
    tmp_path: Path,
    report: list[Row],
) -> None:
    shape = size()
    window = 120.0 if long_run() else 30.0
    ledger = tmp_path / "ledger"
    env = fleet_env(fault_env, fleet_db.url)
    enqueue_work(fleet_db.engine, shape.jobs, ledger)
    fleet = Fleet(env, shape.processes, tmp_path, "--concurrency", str(SLOTS))
    try:
        deadline = time.monotonic() + window
        while work_done(fleet_db.engine) < shape.jobs and time.monotonic() < deadline:
            time.sleep(1.0)
        done = work_done(fleet_db.engine)
    finally:
        # Not hanging: every worker stops within its grace, starved or not.
        codes = fleet.close()
    refusals = troubles(tmp_path)
    attempts = failed_attempts(fleet_db.engine)
    # What the starved fleet left (queued, or running under a worker that could
    # not hand it back) is finished by one worker, which fits the server.
    (tmp_path / "finisher").mkdir()
    finisher = Fleet(env, 1, tmp_path / "finisher")
    try:
        wait_for(lambda: work_done(fleet_db.engine) == shape.jobs, timeout=900, what="the rest")
    finally:
        finisher.close()
    result = books(fleet_db.engine, shape.jobs, ledger)
    report.append(
        Row(
            "10b same fleet, no pooler",
            f"{shape.processes}x{SLOTS} slots, {shape.jobs} jobs, "
            f"max_connections {MAX_CONNECTIONS}",
            f"none; {done} jobs done in the first {window:.0f} s",
            shape.jobs,
            result.states["succeeded"],
            result.states["failed"],
            result.lost,
            str(result.duplicates),
            f"{attempts} attempts failed and {len(refusals)} refusals logged, "
            "all naming max_connections",
        )
    )
    assert all(code in (0, 1) for code in codes), codes  # 1: it could not unregister, starved
    assert result.lost == 0 and set(result.executions) == set(range(shape.jobs))
    assert attempts > 0
    # The worker's own refusals say what to do; a handler's failed attempt names the cause.
    own = [line for line in refusals if "too many clients" in line and OWN_LOGGER.search(line)]
    assert own and all("max_connections is used up" in line for line in own)
