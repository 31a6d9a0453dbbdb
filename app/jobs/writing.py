"""Getting validated jobs into the table: few round trips, inside a savepoint.

Everything here runs in the caller's transaction and never commits. Each
write is wrapped in a savepoint (or the subtransaction of a PL/pgSQL
exception block, which is one): enqueue has refused in Python whatever the
database would refuse, but should the database still refuse a row (a rule
of its own, a lock timeout), the caller's transaction stays usable instead
of silently rolling back the caller's other writes at COMMIT. The common
paths go through psycopg directly: SQLAlchemy's per-statement work costs
more than a round trip here.

- One job: a call of `pillars_enqueue`, whose INSERT runs in a
  subtransaction that hands a refusal back rather than raising it: one
  prepared round trip.
- Many jobs: one INSERT from a JSON array (any options), or, for a large
  batch that needs none of the database's help (no unique keys, no start
  time of its own), COPY, streamed while the batch is still being checked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Connection, exc

from app.jobs import sql

#: Batches at least this large go by COPY when they can.
COPY_FROM = 500

SAVEPOINT = "SAVEPOINT pillars_enqueue"
RELEASE = "RELEASE SAVEPOINT pillars_enqueue"
ROLLBACK = "ROLLBACK TO SAVEPOINT pillars_enqueue"


def insert_one(conn: Connection, params: dict[str, Any]) -> uuid.UUID:
    """Insert one job (no unique key) in a subtransaction, in one round trip."""
    driver = _driver(conn)
    with _refusals(conn, driver, sql.ENQUEUE_CALL, params, savepoint=False):
        row = driver.execute(sql.ENQUEUE_CALL, params).fetchone()
        refusal = None if row is None else row[0]
        if refusal is not None:
            raise _refused(refusal)
    job_id: uuid.UUID = params["job_id"]
    return job_id


def _refused(refusal: str) -> psycopg.Error:
    """The database's refusal, as the error psycopg would have raised for it."""
    state, _, message = refusal.partition("\t")
    try:
        error_class = psycopg.errors.lookup(state)
    except KeyError:
        error_class = psycopg.DatabaseError
    return error_class(message)


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert many jobs in a savepoint; the ids of those inserted (a live unique key skips).

    Each row holds the job's columns, the payload as JSON text.
    """
    driver = _driver(conn)
    params = {"rows": _json_rows(rows)}
    with _refusals(conn, driver, sql.ENQUEUE_MANY_DRIVER, params), _savepoint(driver):
        found = driver.execute(sql.ENQUEUE_MANY_DRIVER, params).fetchall()
    return [job_id for (job_id,) in found]


def copy_many(
    conn: Connection,
    ids: Sequence[uuid.UUID],
    rows: Iterable[dict[str, Any]],
    origin: dict[str, Any],
) -> list[uuid.UUID]:
    """Insert jobs by COPY in a savepoint, each written as `rows` yields it; returns `ids`.

    Each row holds the job's columns, with no unique key and no start time
    of its own (the table's defaults fill the rest); `origin` is the batch's.
    Should `rows` raise (a job the checks refuse), the COPY still ends
    cleanly, with no error for the server to log, and the savepoint undoes
    the rows written before it: nothing stays, and the error is raised.
    """
    driver = _driver(conn)
    refused: Exception | None = None
    with _refusals(conn, driver, sql.ENQUEUE_COPY, {}):
        driver.execute(SAVEPOINT)
        with driver.cursor().copy(sql.ENQUEUE_COPY) as copy:
            try:
                for job_id, row in zip(ids, rows, strict=True):
                    copy.write_row(_copy_values(job_id, row, origin))
            except Exception as error:  # noqa: BLE001 (raised below, once undone)
                refused = error
        if refused is not None:
            driver.execute(ROLLBACK)
        driver.execute(RELEASE)
        if refused is not None:
            raise refused
    return list(ids)


def _copy_values(job_id: uuid.UUID, row: dict[str, Any], origin: dict[str, Any]) -> tuple[Any, ...]:
    """The row in `sql.ENQUEUE_COPY`'s column order."""
    keyed = row["flow_key"] is not None
    return (
        job_id,
        row["name"],
        row["payload"],
        row["queue"],
        row["priority"],
        row["max_attempts"],
        row["context"],
        "waiting" if keyed else "queued",
        row["flow_key"],
        row["flow_limit"],
        row["flow_kind"],
        keyed,
        origin["origin"],
        origin["request_id"],
        origin["trace_context"],
    )


def _json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one JSON array; each payload is JSON already and is spliced in."""
    return (
        "["
        + ",".join(
            json.dumps(
                {
                    key: str(value) if key == "job_id" else _jsonable(value)
                    for key, value in row.items()
                    if key != "payload"
                }
            )[:-1]
            + ', "payload": '
            + row["payload"]
            + "}"
            for row in rows
        )
        + "]"
    )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


@contextmanager
def _savepoint(driver: psycopg.Connection[Any]) -> Iterator[None]:
    driver.execute(SAVEPOINT)
    yield
    driver.execute(RELEASE)


@contextmanager
def _refusals(
    conn: Connection,
    driver: psycopg.Connection[Any],
    statement: str,
    params: dict[str, Any],
    *,
    savepoint: bool = True,
) -> Iterator[None]:
    """Roll back to the savepoint on a refusal, and raise it as SQLAlchemy would."""
    try:
        yield
    except psycopg.Error as error:
        failed = driver.info.transaction_status == pq.TransactionStatus.INERROR
        if savepoint and failed:
            driver.execute(ROLLBACK)
            driver.execute(RELEASE)
        raise exc.DBAPIError.instance(
            statement, params, error, psycopg.Error, dialect=conn.dialect
        ) from error
