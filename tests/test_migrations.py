"""Migrations create everything from an empty database, match the models, and go back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from app.config import normalize_database_url
from tests.database import create_database, with_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_database(database_url: str) -> str:
    admin = with_database(database_url, "postgres").replace("+psycopg", "")
    create_database(admin, "pillars_migrations")
    return normalize_database_url(with_database(database_url, "pillars_migrations"))


def alembic_config(url: str) -> Config:
    os.environ["DATABASE_URL"] = url
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    return config


def test_upgrade_head_on_an_empty_database_creates_every_table(
    empty_database: str, database_url: str
) -> None:
    try:
        command.upgrade(alembic_config(empty_database), "head")
        engine = create_engine(empty_database)
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            trigger = conn.execute(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_notify'")
            ).scalar_one()
        engine.dispose()
        assert {"jobs", "workers", "cron_state", "cron_events", "alembic_version"} <= tables
        assert trigger == 1
    finally:
        os.environ["DATABASE_URL"] = database_url


def test_models_and_migrations_do_not_drift(empty_database: str, database_url: str) -> None:
    try:
        config = alembic_config(empty_database)
        command.upgrade(config, "head")
        command.check(config)  # raises when autogenerate would emit anything
    finally:
        os.environ["DATABASE_URL"] = database_url


def test_downgrade_round_trip(empty_database: str, database_url: str) -> None:
    try:
        config = alembic_config(empty_database)
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        command.upgrade(config, "head")
    finally:
        os.environ["DATABASE_URL"] = database_url
