"""Health probes for load balancers and platforms."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving; says nothing about the database on purpose."""
    return {"status": "ok"}
