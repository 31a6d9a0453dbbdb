"""The release step under load: `alembic upgrade head` beside a live queue.

The next release's migration (written here on top of the real head: a
column added to `jobs`, an index built concurrently) runs while a worker
claims and a producer enqueues, and while another session keeps a
transaction open on `jobs`. Each attempt waits for its lock at most
MIGRATION_LOCK_TIMEOUT, so the queue keeps flowing; the migration retries
until the transaction is gone, or gives up with a message naming it; an
index built concurrently waits as long as it must. Nothing is lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.config import normalize_database_url
from app.jobs import enqueue
from tests.database import alembic_config, create_database, with_database
from tests.processes import ROOT, start, stop, wait_for

pytestmark = pytest.mark.slow

NEXT_RELEASE = '''"""the next release: a note on every job

Revision ID: release_probe
Revises: {head}
"""
import sqlalchemy as sa
from alembic import op

revision = "release_probe"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("release_note", sa.Text(), nullable=True))
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_jobs_release_note ON jobs (release_note)"
            " WHERE release_note IS NOT NULL"
        )


def downgrade() -> None:
    op.drop_index("ix_jobs_release_note", table_name="jobs")
    op.drop_column("jobs", "release_note")
'''


@dataclass
class Release:
    url: str
    engine: Engine
    ini: Path
    env: dict[str, str]


@pytest.fixture
def release(database_url: str, process_env: dict[str, str], tmp_path: Path) -> Iterator[Release]:
    """A database of its own at the real head, and an Alembic setup that knows one more
    migration: the next release's."""
    admin = with_database(database_url, "postgres").replace("+psycopg", "")
    create_database(admin, "pillars_release")
    url = normalize_database_url(with_database(database_url, "pillars_release"))
    command.upgrade(alembic_config(url), "head")
    os.environ["DATABASE_URL"] = database_url
    head = ScriptDirectory(str(ROOT / "alembic")).get_current_head()
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "release_probe.py").write_text(NEXT_RELEASE.format(head=head))
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        (ROOT / "alembic.ini")
        .read_text()
        .replace(
            "script_location = %(here)s/alembic",
            f"script_location = {ROOT / 'alembic'}\n"
            f"version_locations = {ROOT / 'alembic' / 'versions'}{os.pathsep}{versions}",
        )
        .replace("prepend_sys_path = .", f"prepend_sys_path = {ROOT}")
    )
    env = {**process_env, "DATABASE_URL": url, "MIGRATION_LOCK_TIMEOUT": "0.5"}
    engine = create_engine(url, pool_size=3, max_overflow=0)
    yield Release(url, engine, ini, env)
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "pillars_release" WITH (FORCE)')


def alembic(release: Release, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(release.ini), *args],
        cwd=ROOT,
        env={**release.env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Traffic:
    """Enqueues one job every 20 ms on its own connection and remembers how long each took."""

    engine: Engine
    done: list[tuple[float, float]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with Session(self.engine) as session:
            while not self.stopping.wait(0.02):
                began = time.monotonic()
                enqueue(session, "test.noop", {})
                session.commit()
                self.done.append((began, time.monotonic()))

    def during(self, start: float, end: float) -> list[float]:
        """How long each enqueue that ended inside (start, end) took, in seconds."""
        return [finish - began for began, finish in self.done if start < finish < end]


@pytest.fixture
def traffic(release: Release, tmp_path: Path) -> Iterator[Traffic]:
    """The previous release at work: a worker claiming and a producer enqueueing."""
    worker = start("worker.py", release.env, log=tmp_path / "worker.log")
    flow = Traffic(release.engine)
    producer = threading.Thread(target=flow.run, daemon=True)
    try:
        wait_for(lambda: "started" in (tmp_path / "worker.log").read_text(), what="the worker")
        producer.start()
        yield flow
    finally:
        flow.stopping.set()
        producer.join()
        assert stop(worker) == 0


class Blocker:
    """A session that holds a transaction open, as a long report query would."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url.replace("+psycopg", ""))
        self.pid = self.conn.info.backend_pid
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, seconds: float, query: str, *, isolation: str = "READ COMMITTED") -> None:
        """Run `query` in a transaction and keep it open for `seconds`, or until `end()`."""
        self.conn.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        self.conn.execute(query)
        self._thread = threading.Thread(target=self._end_after, args=(seconds,), daemon=True)
        self._thread.start()

    def _end_after(self, seconds: float) -> None:
        self._ended.wait(seconds)
        self.conn.rollback()

    def end(self) -> None:
        self._ended.set()
        if self._thread is not None:
            self._thread.join()


@pytest.fixture
def blocker(release: Release) -> Iterator[Blocker]:
    session = Blocker(release.url)
    yield session
    session.end()
    session.conn.close()


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        moment: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return moment


def claimed_between(engine: Engine, start: datetime, end: datetime) -> int:
    """Jobs the worker claimed between two moments of the database clock."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE started_at BETWEEN :start AND :end"),
                {"start": start, "end": end},
            ).scalar_one()
        )


def settled(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not conn.execute(
            text("SELECT count(*) FROM jobs WHERE state <> 'succeeded'")
        ).scalar_one()


def test_a_migration_behind_a_long_transaction_retries_while_the_queue_flows(
    release: Release,
    traffic: Traffic,
    blocker: Blocker,
) -> None:
    blocker.hold(6.0, "SELECT count(*) FROM jobs")
    started, since = time.monotonic(), db_now(release.engine)
    upgrade = alembic(release, "upgrade", "head")
    ended, until = time.monotonic(), db_now(release.engine)
    try:
        latencies = traffic.during(started, ended)
        claims = claimed_between(release.engine, since, until)
        print(
            f"migration took {ended - started:.1f} s behind a 6 s transaction; meanwhile "
            f"{len(latencies)} enqueues (slowest {max(latencies) * 1000:.0f} ms) and "
            f"{claims} claims"
        )
        assert upgrade.returncode == 0, upgrade.stderr
        assert "could not take its lock within 0.5 s" in upgrade.stderr
        assert f"pid {blocker.pid} (idle in transaction" in upgrade.stderr
        assert latencies and claims  # the queue kept flowing while the migration waited
        wait_for(lambda: settled(release.engine), timeout=60, what="every job to finish")
        with release.engine.connect() as conn:
            assert conn.execute(text("SELECT count(release_note) FROM jobs")).scalar_one() == 0
    finally:
        traffic.stopping.set()
        assert alembic(release, "downgrade", "-1").returncode == 0


def test_a_migration_that_never_gets_its_lock_gives_up_naming_the_transaction(
    release: Release,
    traffic: Traffic,
    blocker: Blocker,
) -> None:
    blocker.hold(60.0, "SELECT count(*) FROM jobs")
    started = time.monotonic()
    upgrade = alembic(release, "upgrade", "head", MIGRATION_LOCK_RETRIES="3")
    ended = time.monotonic()
    blocker.end()
    assert upgrade.returncode != 0
    assert "gave up after 3 attempts" in upgrade.stderr
    assert f"pid {blocker.pid} (idle in transaction" in upgrade.stderr
    assert "SELECT count(*) FROM jobs" in upgrade.stderr
    assert traffic.during(started, ended)
    with release.engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.columns WHERE column_name = 'release_note'"
            )
        ).scalar_one()
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert columns == 0 and version != "release_probe"
    wait_for(lambda: settled(release.engine), timeout=60, what="every job to finish")


def test_an_index_built_concurrently_waits_for_old_transactions_instead_of_failing(
    release: Release, blocker: Blocker
) -> None:
    # A snapshot held open on another table: the column is added at once, but
    # CREATE INDEX CONCURRENTLY must wait for the snapshot to go, far past the
    # lock timeout. Stopped half-way it would leave an invalid index behind.
    blocker.hold(3.0, "SELECT count(*) FROM users", isolation="REPEATABLE READ")
    upgrade = alembic(release, "upgrade", "head")
    try:
        assert upgrade.returncode == 0, upgrade.stderr
        assert "could not take its lock" not in upgrade.stderr
        with release.engine.connect() as conn:
            valid = conn.execute(
                text(
                    "SELECT indisvalid FROM pg_index"
                    " WHERE indexrelid = 'ix_jobs_release_note'::regclass"
                )
            ).scalar_one()
        assert valid
    finally:
        assert alembic(release, "downgrade", "-1").returncode == 0


def test_a_statement_that_runs_too_long_under_its_locks_fails_at_once_with_the_reason(
    release: Release, tmp_path: Path
) -> None:
    slow = (tmp_path / "versions" / "release_probe.py").read_text()
    (tmp_path / "versions" / "release_probe.py").write_text(
        slow.replace(
            '    op.add_column("jobs"',
            '    op.execute("SELECT pg_sleep(5)")\n    op.add_column("jobs"',
        )
    )
    upgrade = alembic(release, "upgrade", "head", MIGRATION_STATEMENT_TIMEOUT="1")
    assert upgrade.returncode != 0
    assert "ran longer than MIGRATION_STATEMENT_TIMEOUT (1 s)" in upgrade.stderr
    assert "SELECT pg_sleep(5)" in upgrade.stderr
    assert "attempt 1 of" not in upgrade.stderr  # not retried
