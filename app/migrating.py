"""The release step beside a running queue: migrations that wait briefly, retry, and say why.

`alembic upgrade head` runs while the previous release still enqueues and
claims. A statement that needs a table lock (`ALTER TABLE jobs ...`) waits
behind every open transaction on the table, and while it waits every
enqueue and every worker cycle queues behind *it*. So each migration's
transaction waits for a lock at most `MIGRATION_LOCK_TIMEOUT` and runs a
statement at most `MIGRATION_STATEMENT_TIMEOUT`; a migration that could not
take its lock is rolled back (each migration is its own transaction) and
tried again after a pause in which the queue flows, and after
`MIGRATION_LOCK_RETRIES` attempts the release step fails with the
transactions that stood in its way. Autocommit blocks (`CREATE INDEX
CONCURRENTLY`, `VALIDATE CONSTRAINT`) wait without a limit: they block no
writer while they wait, and one stopped half-way would leave an invalid
index behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, exc, text

from app.config import ConfigError, Settings
from app.db import sqlstate

log = logging.getLogger("alembic.release")

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
#: Pauses between attempts, seconds: the queue catches up in them.
PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0)


class MigrationBlocked(RuntimeError):
    """A migration could not take its lock in any attempt, or ran too long holding it."""


def url(settings: Settings) -> str:
    """Where migrations connect: a session of their own, never a transaction pooler."""
    if settings.database_direct_url:
        return settings.database_direct_url
    if settings.behind_transaction_pooler:
        raise ConfigError(
            "migrations need a session of their own (their lock and statement timeouts are "
            "session settings), and DATABASE_POOL_MODE=transaction says DATABASE_URL does not "
            "give one: set DATABASE_DIRECT_URL to PostgreSQL itself for the release step"
        )
    return settings.database_url


def set_timeouts(connection: Connection, settings: Settings) -> None:
    """Bound every lock wait and statement of the migrations' transactions on `connection`.

    Session settings, committed at once: a SET inside a transaction that
    later rolls back would be undone with it.
    """
    _timeouts(connection, settings.migration_lock_timeout, settings.migration_statement_timeout)
    connection.commit()


@contextmanager
def patiently(connection: Connection, settings: Settings) -> Iterator[None]:
    """Lift the timeouts for an autocommit block (`connection` is in autocommit there)."""
    _timeouts(connection, 0, 0)
    try:
        yield
    finally:
        _timeouts(connection, settings.migration_lock_timeout, settings.migration_statement_timeout)


def _timeouts(connection: Connection, lock: float, statement: float) -> None:
    connection.exec_driver_sql(f"SET lock_timeout = '{lock * 1000:.0f}'")
    connection.exec_driver_sql(f"SET statement_timeout = '{statement * 1000:.0f}'")


def pause(attempt: int) -> float:
    return PAUSES[min(attempt, len(PAUSES)) - 1]


def retrying(run: Callable[[], None], settings: Settings, report: Callable[[], str]) -> None:
    """Call `run` (one `alembic upgrade`), again after a lock timeout, up to the retries.

    `report` describes what holds the database up, for the messages. A
    statement that ran out of time is not retried: it would only block
    everybody for as long again.
    """
    attempts = settings.migration_lock_retries
    for attempt in range(1, attempts + 1):
        try:
            run()
            return
        except exc.DBAPIError as error:
            state = sqlstate(error)
            statement = first_line(getattr(error, "statement", None))
            if state == QUERY_CANCELED:
                raise MigrationBlocked(
                    f"a migration statement ran longer than MIGRATION_STATEMENT_TIMEOUT "
                    f"({settings.migration_statement_timeout:g} s) while holding its locks: "
                    f"{statement}. Rewrite it to run beside the queue (in batches, or "
                    "CONCURRENTLY: docs/operations.md, Releasing), or run it in a quiet "
                    "hour with MIGRATION_STATEMENT_TIMEOUT=0. Its transaction was rolled back."
                ) from None
            if state != LOCK_NOT_AVAILABLE:
                raise
            blockers = report()
            if attempt == attempts:
                raise MigrationBlocked(
                    f"gave up after {attempts} attempts: a migration could not take its lock "
                    f"within MIGRATION_LOCK_TIMEOUT ({settings.migration_lock_timeout:g} s) "
                    f"for {statement}. {blockers} End those transactions or run the release "
                    "step again once they are done; that migration changed nothing (the "
                    "ones before it in this run are applied)."
                ) from None
            wait = pause(attempt)
            log.warning(
                "attempt %d of %d: a migration could not take its lock within %g s for %s; "
                "%s Trying again in %g s (enqueues and claims go on meanwhile).",
                attempt,
                attempts,
                settings.migration_lock_timeout,
                statement,
                blockers,
                wait,
            )
            time.sleep(wait)


def first_line(statement: Any) -> str:
    words = " ".join(str(statement or "a statement").split())
    return words if len(words) <= 120 else words[:117] + "..."


#: The open transactions of this database, oldest first: who a lock waits behind.
OLDEST_TRANSACTIONS = text("""
SELECT pid, state, extract(epoch FROM now() - xact_start) AS seconds, left(query, 80) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
ORDER BY xact_start
LIMIT 3
""")


def oldest_transactions(connection: Connection) -> str:
    """One sentence naming the oldest open transactions, for a migration's error."""
    try:
        rows = connection.execute(OLDEST_TRANSACTIONS).all()
        connection.rollback()
    except exc.DBAPIError:
        return "The open transactions could not be read."
    if not rows:
        return "No transaction is open now."
    listed = "; ".join(
        f"pid {r.pid} ({r.state} for {float(r.seconds):.0f} s: {first_line(r.query)})" for r in rows
    )
    return f"Oldest open transactions: {listed}."
