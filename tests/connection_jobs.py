"""Handlers that use the database the way real ones do, for the connection tests."""

from __future__ import annotations

from sqlalchemy import text

from app.db import get_engine
from app.jobs import job


@job("connections.hold")
def hold(seconds: float) -> None:
    """Hold one of the worker's handler connections for `seconds`, as a slow query would."""
    with get_engine().connect() as conn:
        conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
