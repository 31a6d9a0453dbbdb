"""Health probes for load balancers and platforms."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.preflight import schema_problem

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


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
    engine: Engine = current_app.extensions["pillars_engine"]
    try:
        with engine.connect() as conn:
            reason = schema_problem(conn)
    except SQLAlchemyError as exc:
        log.warning("readyz: database unreachable: %s", exc)
        return {"status": "unavailable", "reason": "database unreachable"}, 503
    if reason is not None:
        return {"status": "unavailable", "reason": reason}, 503
    return {"status": "ok"}
