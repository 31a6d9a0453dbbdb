"""Before a process works: can it reach the database, and is the schema the one it expects?

Worker, cron and the `flask` commands check at start (or when a command
fails) and answer in one line that says what to do, not with a traceback:
"cannot reach PostgreSQL at 127.0.0.1:5432: connection refused", or the
migration sentence /readyz gives plus "run `alembic upgrade head`". Only at
start: a database that goes away later is waited out by the loops. A server
that refuses only for now (starting, or out of connection slots) is waited
out at start too, for a while.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, exc
from sqlalchemy.engine import make_url

from app.db import is_connection_fault, sqlstate

MIGRATIONS = Path(__file__).resolve().parents[1] / "alembic"
#: "relation does not exist": the tables were never created.
UNDEFINED_TABLE = "42P01"
#: "cannot execute ... in a read-only transaction": a standby, or writes switched off.
READ_ONLY = "25006"
UPGRADE = "run `alembic upgrade head`"

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def expected_heads() -> frozenset[str]:
    """The migration heads this code was written for, read from the scripts once."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def schema_problem(conn: Connection) -> str | None:
    """Why the database's schema is not the one this code expects, or None when it is."""
    expected = expected_heads()
    chatty = logging.getLogger("alembic.runtime.migration")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # "Context impl PostgresqlImpl." on every look
    try:
        current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        chatty.setLevel(level)
    if current == set(expected):
        return None
    return f"database at migration {sorted(current)}, code expects {sorted(expected)}"


def where(url: str) -> str:
    """`host:port` (or the socket folder) of a database URL, never its password."""
    parsed = make_url(url)
    host = parsed.host or str(parsed.query.get("host") or "") or "the local socket"
    return f"{host}:{parsed.port or 5432}"


def _reason(error: BaseException) -> str:
    """What the driver said, in a few words: 'connection refused', 'password authentication ...'."""
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(cause).__name__
    text = re.sub(r"^(connection (failed|is bad): )?connection to server .*? failed: ", "", text)
    text = re.sub(r"^FATAL:\s+", "", text)
    return text[:1].lower() + text[1:]


def unreachable(url: str, error: BaseException) -> str:
    return f"cannot reach PostgreSQL at {where(url)}: {_reason(error)}"


#: How long worker and cron wait at start for a server that refuses for now (`PASSING`).
START_PATIENCE = 60.0
#: What a server says when it refuses connections only for now: it is starting, stopping
#: or recovering, or its connection slots (or a role's or database's) are all taken.
#: A refused connection carries no SQLSTATE, only its text.
PASSING = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for role",
    "too many connections for database",
)


def check(
    engine: Engine, *, patience: float = 0.0, stopping: Callable[[], bool] = lambda: False
) -> str | None:
    """The one line that says why this process cannot work with `engine`'s database, or None.

    A refusal that passes by itself (see `PASSING`) is waited out for up
    to `patience` seconds, saying so in the log: a worker restarted while
    the fleet holds every connection, or while the server restarts, then
    starts once there is room instead of exiting as if misconfigured. Once
    `stopping()` holds, the wait ends with None: the caller honours the stop.
    """
    where_to = engine.url.render_as_string(hide_password=True)
    deadline, pause = time.monotonic() + patience, 0.2
    said: float | None = None
    while True:
        try:
            with engine.connect() as conn:
                problem = schema_problem(conn)
            return None if problem is None else f"{problem}: {UPGRADE}"
        except exc.OperationalError as error:
            line = unreachable(where_to, error)
            if not any(words in str(error) for words in PASSING):
                return line
            now = time.monotonic()
            if now >= deadline:
                return line
            if said is None or now - said >= 10.0:
                log.warning("%s; waiting up to %.0f s more", line, deadline - now)
                said = now
        engine.dispose()  # no half-open pool left behind
        until = min(deadline, time.monotonic() + pause)
        while time.monotonic() < until:
            if stopping():
                return None
            time.sleep(0.05)
        pause = min(pause * 2, 2.0)


def explain(engine: Engine, error: exc.SQLAlchemyError) -> str | None:
    """One line for a database error a command met, when it is about the setup; else None.

    A missing table means migrations never ran; a failed connection, an
    unreachable server; a connection ended under the command (the server
    restarting, an administrator), a lost one, to try again; a refused
    write, a server that takes none (DATABASE_URL names a standby, say).
    Anything else is a real fault, for the traceback.
    """
    where_to = engine.url.render_as_string(hide_password=True)
    state = sqlstate(error)
    if state == READ_ONLY:
        return (
            f"PostgreSQL at {where(where_to)} takes no writes (a standby, or "
            f"default_transaction_read_only is on): {_reason(error)}"
        )
    if state == UNDEFINED_TABLE:
        return check(engine)
    if state in (None, "08001") and isinstance(error, exc.OperationalError):
        return check(engine) or unreachable(where_to, error)
    if is_connection_fault(error):
        return check(engine) or (
            f"lost the connection to PostgreSQL at {where(where_to)}: {_reason(error)}; "
            "the command may not have finished: run it again"
        )
    return None
