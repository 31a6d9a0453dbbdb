"""Migrations create everything from an empty database, match the models, and go back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from app.config import normalize_database_url
from tests.database import alembic_config, create_database, with_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_database(database_url: str) -> Iterator[tuple[str, Config]]:
    """An empty database and an Alembic config aimed at it (through DATABASE_URL)."""
    admin = with_database(database_url, "postgres").replace("+psycopg", "")
    create_database(admin, "pillars_migrations")
    url = normalize_database_url(with_database(database_url, "pillars_migrations"))
    yield url, alembic_config(url)
    os.environ["DATABASE_URL"] = database_url


def test_upgrade_head_on_an_empty_database_creates_every_table(
    empty_database: tuple[str, Config],
) -> None:
    url, config = empty_database
    command.upgrade(config, "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        trigger = conn.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_notify'")
        ).scalar_one()
    engine.dispose()
    assert {
        "jobs",
        "workers",
        "queue_pauses",
        "cron_state",
        "cron_events",
        "alembic_version",
    } <= tables
    assert trigger == 1


def test_models_and_migrations_do_not_drift(empty_database: tuple[str, Config]) -> None:
    _, config = empty_database
    command.upgrade(config, "head")
    command.check(config)  # raises when autogenerate would emit anything


def test_downgrade_round_trip(empty_database: tuple[str, Config]) -> None:
    _, config = empty_database
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def test_users_made_before_confirmation_links_count_as_confirmed(
    empty_database: tuple[str, Config],
) -> None:
    url, config = empty_database
    command.upgrade(config, "0013_observability")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, password_hash) VALUES ('ada@x.test', 'h')"))
    command.upgrade(config, "0014_confirm_address")
    with engine.connect() as conn:
        confirmed = conn.execute(text("SELECT confirmed_at = created_at FROM users")).scalar_one()
    engine.dispose()
    assert confirmed is True


def test_rows_with_times_no_reader_can_convert_are_mended_and_others_left_alone(
    empty_database: tuple[str, Config],
) -> None:
    url, config = empty_database
    command.upgrade(config, "0016_notify_waiting")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (name, created_at, attempts, started_at, finished_at) VALUES"
                " ('bad', '-infinity', -3, 'infinity', NULL),"
                " ('good', '2026-01-01 00:00+00', 2, NULL, '2026-01-02 00:00+00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (name, state, unique_key) VALUES ('holder', 'queued', 'k1');"
                "INSERT INTO jobs (name, state, flow_fresh, unique_key, created_at, attempts)"
                " VALUES ('keyless', 'waiting', true, 'k1', '-infinity', -1);"
                "INSERT INTO queue_limits (queue, rate, burst, tokens)"
                " VALUES ('lq', 'Infinity', 2000000000, '-Infinity')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO cron_state (name, last_run_at, paused_at) VALUES"
                " ('bad', 'infinity', '-infinity'), ('good', '2026-01-01 00:00+00', NULL)"
            )
        )
    command.upgrade(config, "0017_readable_times")
    with engine.connect() as conn:
        states = {
            row.name: row
            for row in conn.execute(
                text(
                    "SELECT name, last_run_at > now() - interval '1 hour' AS fresh,"
                    " isfinite(paused_at) AS paused FROM cron_state"
                )
            )
        }
        limit = tuple(conn.execute(text("SELECT rate, burst, tokens FROM queue_limits")).one())
        rows = {
            row.name: row
            for row in conn.execute(
                text(
                    "SELECT name, state, isfinite(created_at) AS created, attempts,"
                    " isfinite(started_at) AS started, finished_at, locked_at FROM jobs"
                )
            )
        }
    engine.dispose()
    assert (rows["bad"].created, rows["bad"].attempts, rows["bad"].started) == (True, 0, True)
    assert rows["bad"].finished_at is None and rows["bad"].locked_at is None
    assert rows["good"].attempts == 2 and rows["good"].started is None
    assert str(rows["good"].finished_at.date()) == "2026-01-02"
    assert (states["bad"].fresh, states["bad"].paused) == (True, True)
    assert (rows["keyless"].state, rows["keyless"].created) == ("cancelled", True)
    assert rows["keyless"].finished_at is not None and limit == (1_000_000, 1_000_000, 0)
    assert (states["good"].fresh, states["good"].paused) == (False, None)


def test_waiting_duplicates_of_a_unique_key_are_cancelled_and_the_key_then_held(
    empty_database: tuple[str, Config],
) -> None:
    url, config = empty_database
    command.upgrade(config, "0017_readable_times")
    engine = create_engine(url)
    flow = "flow_key, flow_kind, flow_limit"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO jobs (name, state, unique_key, {flow}, created_at) VALUES"
                " ('b', 'waiting', 'u', 'k', 'concurrency', 2, now()),"
                " ('a', 'waiting', 'u', 'k', 'concurrency', 2, now() - interval '1 ms'),"
                " ('c', 'waiting', 'v', 'k', 'concurrency', 2, now()),"
                " ('d', 'queued', 'w', NULL, NULL, NULL, now()),"
                " ('e', 'waiting', 'w', 'k', 'concurrency', 2, now() - interval '1 s')"
            )
        )
    command.upgrade(config, "0018_unique_while_waiting")
    with engine.connect() as conn:
        states: dict[str, str] = dict(conn.execute(text("SELECT name, state FROM jobs")).all())
    engine.dispose()
    assert states == {
        "a": "waiting",
        "b": "cancelled",
        "c": "waiting",
        "d": "queued",
        "e": "cancelled",
    }
