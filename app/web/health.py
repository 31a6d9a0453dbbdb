"""Health probes for load balancers and platforms."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"


@lru_cache(maxsize=1)
def expected_heads() -> frozenset[str]:
    """The migration heads this code was written for, read from the scripts once."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving; says nothing about the database on purpose."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready for traffic: the database answers and its schema is the one this code expects.

    A platform holds traffic back from a new release until `alembic upgrade
    head` has run, and from any process that cannot reach the database.
    """
    expected = expected_heads()
    engine: Engine = current_app.extensions["pillars_engine"]
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        log.warning("readyz: database unreachable: %s", exc)
        return {"status": "unavailable", "reason": "database unreachable"}, 503
    if current != expected:
        reason = f"database at migration {sorted(current)}, code expects {sorted(expected)}"
        return {"status": "unavailable", "reason": reason}, 503
    return {"status": "ok"}
