"""A pillar started while the server refuses only for now waits for room, then works.

A worker restarted while the fleet holds every connection slot (or while
the server restarts) is not misconfigured: exiting 2 at once would make a
supervisor that stops restarting on a setup error give up on it. The
refusal is played by a role of its own whose connection limit is 0, then
lifted, against the real worker and cron processes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from app import preflight
from app.jobs import enqueue
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.slow

ROLE = "pillars_starved"


@pytest.fixture
def starved(db: Engine, database_url: str) -> Iterator[str]:
    """A URL for a role that may use the test database but has no connection slot left."""
    with db.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {ROLE}") if _role_exists(conn) else text("SELECT 1"))
        conn.execute(text(f"DROP ROLE IF EXISTS {ROLE}"))
        conn.execute(text(f"CREATE ROLE {ROLE} LOGIN CONNECTION LIMIT 0"))
        name = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f'GRANT ALL ON DATABASE "{name}" TO {ROLE}'))
        conn.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE}"))
        conn.execute(text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE}"))
    yield make_url(database_url).set(username=ROLE, password=None).render_as_string(False)
    with db.begin() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
            {"role": ROLE},
        )
        conn.execute(text(f"DROP OWNED BY {ROLE}"))
        conn.execute(text(f"DROP ROLE {ROLE}"))


def _role_exists(conn: Connection) -> bool:
    query = text("SELECT 1 FROM pg_roles WHERE rolname = :role")
    return conn.execute(query, {"role": ROLE}).first() is not None


def _make_room(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(text(f"ALTER ROLE {ROLE} CONNECTION LIMIT -1"))


@pytest.mark.parametrize("pillar", ["worker", "cron"])
def test_a_pillar_started_without_a_free_connection_waits_then_works(
    pillar: str, db: Engine, starved: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / f"{pillar}.log"
    process = start(f"{pillar}.py", {**process_env, "DATABASE_URL": starved}, log=log)
    try:
        wait_for(
            lambda: "too many connections for role" in log.read_text(),
            what=f"{pillar} to say why it waits",
        )
        assert "waiting up to" in log.read_text()
        assert process.poll() is None, log.read_text()
        _make_room(db)
        wait_for(lambda: _registered(db, pillar), timeout=60, what=f"{pillar} to register")
        if pillar == "worker":
            with Session(db) as session:
                job_id = enqueue(session, "test.add", {"a": 2, "b": 3})
                session.commit()
            wait_for(lambda: _state(db, job_id) == "succeeded", what="the job to run")
    finally:
        assert stop(process) == 0, log.read_text()


def test_a_stop_while_waiting_ends_the_wait_at_once_and_cleanly(
    starved: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    process = start("worker.py", {**process_env, "DATABASE_URL": starved}, log=log)
    try:
        wait_for(lambda: "waiting up to" in log.read_text(), what="the worker to wait")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, log.read_text()
    finally:
        stop(process)
    assert "stopped while starting" in log.read_text()


def test_the_wait_ends_with_the_one_line_or_at_a_stop(starved: str) -> None:
    engine = create_engine(starved)
    try:
        began = time.monotonic()
        problem = preflight.check(engine, patience=1.0)
        assert problem is not None and "too many connections for role" in problem
        assert problem.startswith("cannot reach PostgreSQL at ")
        assert time.monotonic() - began >= 1.0  # it did wait
        assert preflight.check(engine, patience=600.0, stopping=lambda: True) is None
    finally:
        engine.dispose()


def test_a_refusal_that_will_not_pass_is_reported_at_once(database_url: str) -> None:
    wrong = make_url(database_url).set(database="pillars_no_such_database")
    engine = create_engine(wrong)
    try:
        began = time.monotonic()
        problem = preflight.check(engine, patience=600.0)
        assert problem is not None and "does not exist" in problem
        assert time.monotonic() - began < 60.0
    finally:
        engine.dispose()


def _registered(db: Engine, pillar: str) -> bool:
    with db.connect() as conn:
        query = text("SELECT count(*) FROM workers WHERE kind = :kind")
        return bool(conn.execute(query, {"kind": pillar}).scalar_one())


def _state(db: Engine, job_id: object) -> str | None:
    with db.connect() as conn:
        query = text("SELECT state FROM jobs WHERE job_id = :id")
        return conn.execute(query, {"id": job_id}).scalar_one_or_none()
