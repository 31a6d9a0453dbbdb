"""What sits between a process's presence and PostgreSQL, and how to tell.

A presence (`app.jobs.processes`) needs a session of its own for its life
lock and its LISTEN. PostgreSQL itself gives one, and so does a pooler in
session mode; a transaction pooler does not. `link` picks where the
presence connects and how peers judge it, from the settings; the checks
below catch a transaction pooler that the settings did not mention.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.config import Settings
from app.jobs import sql

#: A process with a lease counts as dead once its heartbeat is this many
#: heartbeat intervals old (the same grace as a lockless process in `heartbeat`).
LEASE_BEATS = 2.0
#: Rounds of the check, at registration, that the presence has a session of its own.
SESSION_PROBES = 3
#: How long the check waits for a second connection's answer.
SECOND_CLIENT_WAIT = 3.0


@dataclass(frozen=True)
class Link:
    """Where a process keeps its presence, and how its peers tell that it is alive."""

    #: The libpq connection string of the presence connection.
    conninfo: str
    #: None: a life lock held on a session of its own, where workers LISTEN too.
    #: Seconds: no such session (a transaction pooler); dead once the heartbeat is older.
    lease: float | None = None


def link(engine: Engine, settings: Settings) -> Link:
    """The presence `settings` call for: direct, or a lease behind a transaction pooler."""
    if settings.database_direct_url:
        return Link(_libpq(settings.database_direct_url))
    if settings.behind_transaction_pooler:
        return Link(conninfo(engine), lease=LEASE_BEATS * settings.heartbeat_interval)
    return Link(conninfo(engine))


# Whether the session running the statement holds life lock `lock_key`: read
# only, for the check that a presence's session is its own.
_HOLDS_LIFE_LOCK = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND pid = pg_backend_pid()
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = CAST(%(namespace)s AS oid) AND objid = CAST(%(lock_key)s AS oid))
"""


def holds_life_lock(conn: psycopg.Connection[Any], lock_key: int) -> bool:
    """Whether the session `conn` runs its next statement on holds life lock `lock_key`."""
    params = {"namespace": sql.LOCK_NAMESPACE, "lock_key": lock_key}
    row = conn.execute(_HOLDS_LIFE_LOCK, params).fetchone()
    return bool(row and row[0])


def shared_session(conninfo: str, conn: psycopg.Connection[Any], lock_key: int) -> str | None:
    """Say how `conn` turned out not to be a session of its own, or None if it is.

    Directly, or through a pooler in session mode, the lock `conn` took is
    its own session's for life, and no other connection can hold it. Through
    a transaction pooler each statement may run on another server session:
    `conn` may find its lock gone, or a second client may land on the
    session that holds it. Either is proof; several rounds make it likely
    that a busy pool shows the first, and a quiet one (which hands out the
    session used last) shows the second at once.
    """
    for _ in range(SESSION_PROBES):
        if not holds_life_lock(conn, lock_key):
            return "its life lock is missing from its own session a moment after it took it"
    if _second_client_holds(conninfo, lock_key):
        return "a second connection was handed the very session that holds its life lock"
    return None


def _second_client_holds(conninfo: str, lock_key: int) -> bool:
    """Whether a new connection finds itself on the session holding `lock_key`.

    Asked on a thread of its own and given `SECOND_CLIENT_WAIT` seconds: a
    full server refuses the connection, and a pooler in session mode with
    every server session taken keeps it waiting; either way this half of
    the check is left out rather than holding the presence up.
    """
    found: list[bool] = []

    def ask() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as other:
                found.extend(holds_life_lock(other, lock_key) for _ in range(SESSION_PROBES))
        except psycopg.Error:
            pass

    asking = threading.Thread(target=ask, name="pillars-session-check", daemon=True)
    asking.start()
    asking.join(SECOND_CLIENT_WAIT)
    return any(list(found))


def pooler_problem(who: str, finding: str) -> str:
    """The one line a process logs when its presence has no session of its own."""
    return (
        f"{who}: its database connection is not a session "
        f"of its own ({finding}): a transaction pooler such as PgBouncer with "
        "pool_mode = transaction. There wake-ups are lost, a death goes unseen until the "
        "stale timeout, and prepared statements run on other sessions. Set "
        "DATABASE_POOL_MODE=transaction for every process, and DATABASE_DIRECT_URL to "
        "PostgreSQL itself for the presence connection (docs/operations.md, PgBouncer); "
        "stopping"
    )


def conninfo(engine: Engine) -> str:
    """A libpq connection string for `engine`'s database (for psycopg, not SQLAlchemy)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL from the settings."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
