"""Fixtures: one real PostgreSQL per test run, migrated with Alembic, emptied per test."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.jobs import load_job_modules
from app.web import create_app
from tests.database import drop_databases, prepare_database

ROOT = Path(__file__).resolve().parent.parent

#: `site` and `browser` for the real-browser tests.
pytest_plugins = ["tests.browser"]

#: Short intervals so crash-recovery tests finish in seconds.
FAST = {
    "JOB_MODULES": "tests.jobs",
    "WORKER_HEARTBEAT_INTERVAL": "0.5",
    "WORKER_STALE_TIMEOUT": "3",
    "WORKER_SHUTDOWN_GRACE": "5",
    "WORKER_POLL_INTERVAL": "0.2",
}


def pytest_configure(config: pytest.Config) -> None:
    """Give every process the suite starts (gunicorn, the flask CLI, workers) a proper
    SECRET_KEY, as production must: the site refuses to start without one."""
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database; DATABASE_URL points at it for this process."""
    # A folder of this run's own: pytest's numbered folders are shared with
    # (and cleaned up by) other pytest runs on the machine.
    root = Path(tempfile.mkdtemp(prefix="pillars-test-"))
    url, server = prepare_database(root)
    mail_dir = str(tmp_path_factory.mktemp("mail"))
    os.environ.update(FAST, DATABASE_URL=url, MAIL_DIR=mail_dir)
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    load_job_modules(["tests.jobs"])
    yield url
    if server is not None:
        server.cleanup()
    else:  # a shared server (TEST_DATABASE_URL): leave it as it was
        drop_databases(url)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings, pool_size=10, application_name="pillars-tests")
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The engine, with every table emptied first: for tests that commit."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE jobs, job_tallies, workers, queue_pauses, cron_state, cron_events, users,"
                " operator_actions,"
                " login_attempts, rate_events, exports"
            )
        )
    return engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    """A session on an empty database; the test decides whether to commit."""
    with Session(db, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def process_env(database_url: str) -> dict[str, Any]:
    """Environment for worker and cron subprocesses: same database, fast intervals."""
    return {**os.environ, **FAST, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def app(db: Engine) -> Iterator[Flask]:
    """The app on an empty database, configured for tests (CSRF stays on)."""
    app = create_app({"TESTING": True})
    yield app
    app.extensions["pillars_engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def mailbox(settings: Settings) -> Path:
    """The folder development mail goes to, emptied for this test."""
    folder = Path(settings.mail_dir)
    for message in folder.glob("*.eml"):
        message.unlink()
    return folder
