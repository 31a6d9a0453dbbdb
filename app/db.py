"""Engines and sessions (one engine per process, sessions owned by their callers), and
what a database error means for the connection it came from."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import psycopg
import sqlalchemy
from psycopg.types.json import set_json_loads
from sqlalchemy import Connection, Engine, event, exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings


def make_engine(
    settings: Settings,
    *,
    pool_size: int = 5,
    max_overflow: int = 0,
    application_name: str = "pillars",
) -> Engine:
    """Create an engine for `settings.database_url` that holds at most `pool_size` connections.

    No overflow by default: a process's connections are then a number an
    operator can add up (docs/operations.md, Sizing), and a thread that finds
    them all in use waits for one (`pool_timeout`, 30 s) instead of opening
    another. `pool_pre_ping` lets every process survive a database restart:
    a dead pooled connection is replaced instead of failing the next
    statement. Sessions that are alive but useless are dropped too (see
    `_drop_useless_sessions`). Behind a transaction pooler nothing is
    prepared on the server: the next transaction may run on another session,
    where the statement is missing or, worse, another one has its name.
    """
    connect_args: dict[str, Any] = {"application_name": application_name}
    if settings.behind_transaction_pooler:
        connect_args["prepare_threshold"] = None
    # Looked up at call time: with tracing on, its instrumentation wraps it.
    engine = sqlalchemy.create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    event.listen(engine, "handle_error", _drop_useless_sessions)
    event.listen(engine, "connect", _read_json_safely)
    return engine


def _read_json_safely(dbapi_connection: Any, record: Any) -> None:
    """Read every json/jsonb value on this connection with `read_json`."""
    set_json_loads(read_json, dbapi_connection)


def read_json(data: str | bytes) -> Any:
    """`json.loads` that never fails on what a jsonb column may hold.

    jsonb accepts numbers of any size and nesting as deep as the server's
    stack allows; Python refuses integers of more than 4,300 digits and
    nesting near 1,000. A row like that (written by SQL, past enqueue's
    checks) must not break a page or a query that merely reads it: it
    reads as an object that says why.
    """
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return {"unreadable": f"this JSON value cannot be read in Python: {reason[:200]}"}


def _drop_useless_sessions(context: ExceptionContext) -> None:
    """Treat a read-only or recovering session like a lost one: discard the pool.

    A connection opened while the server was read-only (a standby, or
    `default_transaction_read_only` during a failover) stays read-only for
    life, and a pre-ping cannot tell; without this every write on it would
    fail forever after the database became writable again.
    """
    if context.original_exception is not None and is_connection_fault(context.original_exception):
        context.is_disconnect = True


def delete_in_batches(engine: Engine, delete_batch: Callable[[Connection], int], batch: int) -> int:
    """Run `delete_batch` (returns how many rows it deleted, at most `batch`) until it
    deletes fewer than `batch`; return the total.

    Each batch commits on its own: short transactions hold few locks and let
    vacuum reclaim the space while the deleting goes on, and a chore stopped
    midway keeps what it did.
    """
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = delete_batch(conn)
        deleted += count
        if count < batch:
            return deleted


def without_jit(conn: Connection) -> None:
    """Keep JIT compilation out of the rest of `conn`'s transaction.

    PostgreSQL compiles a plan to machine code once its estimated cost passes
    `jit_above_cost` (on by default where the server was built with LLVM, as
    Debian's and the PGDG packages are). Reads over a big jobs table that
    aggregate or walk names estimate high and run in milliseconds: at a
    million jobs the overview took 480 ms, of which compiling two of its
    statements took 200-250 ms each; 86 ms without. Local to the
    transaction, so it holds behind a transaction pooler and changes nothing
    for the connection's next user; outside a transaction it does nothing.
    """
    conn.execute(sqlalchemy.text("SELECT set_config('jit', 'off', true)"))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose sessions keep objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """Return this process's shared engine, built from the environment on first use.

    Handlers running in the worker use it for their own writes, and share its
    `WORKER_DB_POOL` connections (by default one per slot). The worker's own
    statements go through an engine of their own (`worker.py`), so handlers
    that use every connection cannot hold up its heartbeat or its claims.
    """
    settings = get_settings()
    return make_engine(settings, pool_size=settings.handler_pool)


#: SQLSTATEs that mean "this session cannot do its work any more, a new one may":
#: the connection classes, an administrator or crash shutdown, a server still
#: starting or in recovery, and a session stuck read-only (what a failover to a
#: promoted replica looks like to connections opened while it was a standby).
CONNECTION_FAULTS = frozenset({"25006", "57P01", "57P02", "57P03"})
_CONNECTION_CLASSES = ("08",)


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error, through SQLAlchemy's wrapper if there is one."""
    cause = error.orig if isinstance(error, exc.DBAPIError) else error
    return getattr(cause, "sqlstate", None)


def is_connection_fault(error: BaseException) -> bool:
    """Whether the session behind `error` should be dropped and a new one opened: the
    database is away, rather than refusing what was sent.

    The server names every refusal with a SQLSTATE. A driver error without one
    came from the client's side: an `OperationalError` or `InterfaceError` is
    a connection that broke or could not be opened at all ("Connection
    refused", "the database system is starting up": a connection attempt
    carries no SQLSTATE), while a `DataError` or `ProgrammingError` is a value
    the driver could not send, which no reconnection will change.
    """
    state = sqlstate(error)
    if state is None:
        cause = error.orig if isinstance(error, exc.DBAPIError) else error
        return (isinstance(error, exc.DBAPIError) and error.connection_invalidated) or isinstance(
            cause, psycopg.OperationalError | psycopg.InterfaceError
        )
    return state in CONNECTION_FAULTS or state.startswith(_CONNECTION_CLASSES)


def describe(error: BaseException) -> str:
    """One line naming the driver's error and what it said, not SQLAlchemy's wrapper.

    A refusal for want of connections says what to do about it: without
    that, a fleet larger than the server repeats "too many clients" and
    leaves the operator to guess where the connections went.
    """
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    line = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    hint = next((hint for words, hint in _CROWDED if words in first), None)
    return f"{line} ({hint})" if hint else line


_SIZING = "see docs/operations.md, Sizing"
#: What PostgreSQL and PgBouncer say when they are out of connections (a refused
#: connection carries no SQLSTATE, only its text), and what to do about it.
_CROWDED = (
    (
        "too many clients already",
        f"PostgreSQL's max_connections is used up: add up what every process holds, "
        f"or put PgBouncer in front; {_SIZING}",
    ),
    (
        "remaining connection slots are reserved",
        f"PostgreSQL's max_connections is used up but for reserved slots; {_SIZING}",
    ),
    ("max_client_conn", f"PgBouncer's max_client_conn is too small for the fleet; {_SIZING}"),
    (
        "query_wait_timeout",
        f"PgBouncer's pool kept this client waiting too long: the pool is too small; {_SIZING}",
    ),
)


class Raw:
    """A statement in PostgreSQL's own `$n` placeholders, with its parameters' names in order.

    psycopg parses a `%(name)s` query at every run to find its parameters,
    and caches that only for queries under 4 kB; the worker's cycle is
    longer and runs hundreds of times a second. Converted once here, it
    goes out as it is (`psycopg.RawCursor`).
    """

    __slots__ = ("names", "query")

    def __init__(self, statement: str) -> None:
        """`statement`: psycopg's parameter style (`%(name)s`, `%%` for a percent sign)."""
        names: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            if match[1] is None:
                return "%"
            return f"${names.setdefault(match[1], len(names) + 1)}"

        self.query = _PSYCOPG_PARAMETER.sub(number, statement).encode()
        self.names = tuple(names)


_PSYCOPG_PARAMETER = re.compile(r"%\((\w+)\)s|%%")


def on_driver(conn: Connection, statement: Raw, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run `statement` on `conn`'s own driver connection.

    For statements whose rows are many and plain (the worker's cycle):
    SQLAlchemy's per-row result work costs more than the database's. Errors
    come out as SQLAlchemy raises them, and a lost or useless session is
    invalidated as SQLAlchemy would.
    """
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    values = [params[name] for name in statement.names]
    try:
        with psycopg.RawCursor(driver) as cursor:
            return cursor.execute(statement.query, values).fetchall()
    except psycopg.Error as error:
        lost = is_connection_fault(error) or driver.closed or driver.broken
        if lost:
            conn.invalidate(error)
        raise exc.DBAPIError.instance(
            statement.query.decode(),
            params,
            error,
            psycopg.Error,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from error
