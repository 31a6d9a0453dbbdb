"""Fixtures of the fault suite: a private server, fresh databases, the report table."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

from app.config import normalize_database_url
from app.jobs import load_job_modules
from tests.faults.server import PrivateServer

ROOT = Path(__file__).resolve().parents[2]
_numbers = itertools.count()


@dataclass
class Row:
    scenario: str
    load: str
    faults: str
    enqueued: int
    succeeded: int
    failed: int
    lost: int
    duplicates: str
    recovery: str


ROWS: list[Row] = []


@pytest.fixture(scope="session")
def private_server() -> Iterator[PrivateServer]:
    """A PostgreSQL of the suite's own, which scenarios may restart."""
    server = PrivateServer(Path(tempfile.mkdtemp(prefix="pillars-faults-"))).init()
    server.start()
    yield server
    server.stop()
    server.remove()


@dataclass
class FaultDatabase:
    url: str
    engine: Engine


@pytest.fixture
def fault_db(private_server: PrivateServer) -> Iterator[FaultDatabase]:
    """A fresh, migrated database on the private server."""
    name = f"faults_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(private_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = normalize_database_url(private_server.url(name))
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["configure_logger"] = False
        command.upgrade(config, "head")
    finally:
        if previous is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = previous
    load_job_modules(["tests.faults.jobs"])
    engine = create_engine(url, pool_pre_ping=True, pool_size=5)
    yield FaultDatabase(url, engine)
    engine.dispose()


@pytest.fixture
def fault_env(fault_db: FaultDatabase) -> dict[str, str]:
    """Environment for worker processes against the private server."""
    return {
        **os.environ,
        "DATABASE_URL": fault_db.url,
        "JOB_MODULES": "tests.faults.jobs",
        "WORKER_HEARTBEAT_INTERVAL": "0.5",
        "WORKER_STALE_TIMEOUT": "5",
        "WORKER_SHUTDOWN_GRACE": "5",
        "WORKER_POLL_INTERVAL": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def report() -> list[Row]:
    """Rows added here are printed as the suite's table at the end of the run."""
    return ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    headers = (
        "scenario",
        "load",
        "faults injected",
        "enqueued",
        "succeeded",
        "failed",
        "lost",
        "dup. executions",
        "worst recovery",
    )
    table = [headers] + [
        (
            r.scenario,
            r.load,
            r.faults,
            str(r.enqueued),
            str(r.succeeded),
            str(r.failed),
            str(r.lost),
            r.duplicates,
            r.recovery,
        )
        for r in ROWS
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    terminalreporter.section("fault injection")
    for index, row in enumerate(table):
        terminalreporter.write_line(
            " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        )
        if index == 0:
            terminalreporter.write_line("-+-".join("-" * w for w in widths))
