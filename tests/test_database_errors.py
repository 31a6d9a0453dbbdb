"""Which errors mean "the database is away" (wait, keep everything) and which "it refused
this" (set the one thing aside): the worker drops an outcome only for the second."""

from __future__ import annotations

import socket

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, exc, text

from app.db import is_connection_fault


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_connection_that_cannot_be_opened_is_the_database_away() -> None:
    port = closed_port()
    with pytest.raises(psycopg.OperationalError) as raw:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=5)
    assert raw.value.sqlstate is None  # refused before any server could answer
    assert is_connection_fault(raw.value)
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    with pytest.raises(exc.OperationalError) as wrapped:
        engine.connect()
    assert is_connection_fault(wrapped.value)


def test_a_lost_session_is_the_database_away(db: Engine) -> None:
    with db.connect() as victim, db.connect() as killer:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(exc.DBAPIError) as lost:
            victim.execute(text("SELECT 1"))
    assert is_connection_fault(lost.value)


def test_a_statement_the_server_refuses_is_not(db: Engine) -> None:
    with db.connect() as conn, pytest.raises(exc.DBAPIError) as refused:
        conn.execute(text("SELECT 1 / 0"))
    assert not is_connection_fault(refused.value)


def test_a_value_the_driver_cannot_send_is_not(db: Engine) -> None:
    with db.connect() as conn, pytest.raises(exc.DBAPIError) as unsendable:
        conn.execute(text("SELECT CAST(:v AS text)"), {"v": object()})
    assert (
        unsendable.value.orig is not None and getattr(unsendable.value.orig, "sqlstate", 1) is None
    )
    assert not is_connection_fault(unsendable.value)
