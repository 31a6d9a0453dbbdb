"""Alembic environment: the same Settings as every process, never the Flask app.

Migrations run as the release step, beside the previous release's web,
workers and cron: each migration is its own transaction with a short lock
wait, retried while the queue flows (see `app.migrating`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from alembic.runtime.migration import MigrationContext
from dotenv import load_dotenv
from sqlalchemy import Connection, create_engine, pool

from app import migrating
from app.config import Settings
from app.models import Base

load_dotenv()
config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`) without a database."""
    context.configure(
        url=Settings.from_env().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    settings = Settings.from_env()
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable, settings)
        return
    engine = create_engine(migrating.url(settings), poolclass=pool.NullPool)

    def attempt() -> None:
        with engine.connect() as connection:
            _run(connection, settings)

    def blockers() -> str:
        with engine.connect() as connection:
            return migrating.oldest_transactions(connection)

    try:
        migrating.retrying(attempt, settings, blockers)
    except migrating.MigrationBlocked as error:
        sys.exit(f"alembic: {error}")
    finally:
        engine.dispose()


def _run(connection: Connection, settings: Settings) -> None:
    migrating.set_timeouts(connection, settings)
    context.configure(
        connection=connection, target_metadata=target_metadata, transaction_per_migration=True
    )
    _wait_patiently_in_autocommit_blocks(context.get_context(), connection, settings)
    with context.begin_transaction():
        context.run_migrations()


def _wait_patiently_in_autocommit_blocks(
    migration: MigrationContext, connection: Connection, settings: Settings
) -> None:
    """Lift the timeouts inside `autocommit_block()` (see `app.migrating`)."""
    plain = migration.autocommit_block

    @contextmanager
    def patient() -> Iterator[None]:
        with plain(), migrating.patiently(migration.connection or connection, settings):
            yield

    migration.autocommit_block = patient  # type: ignore[method-assign]


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
