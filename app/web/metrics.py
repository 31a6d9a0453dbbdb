"""`/metrics` for Prometheus: the queue's figures, read from the database per scrape.

Open by default, like most exporters on a private network; set METRICS_TOKEN
to require `Authorization: Bearer <token>` (the scheme in any case, as HTTP
says; the bare token alone is refused). What it shows without a token is in
docs/operations.md.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from app.jobs import histograms, metrics
from app.web.db import get_session

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Every figure in Prometheus' text format."""
    settings = current_app.config["PILLARS_SETTINGS"]
    if settings.metrics_token and not _authorized(settings.metrics_token):
        abort(401)
    alive_within = 3 * settings.heartbeat_interval
    conn = get_session().connection()
    snapshot = metrics.metrics_snapshot(conn, alive_within=alive_within)
    body = metrics.render(snapshot) + histograms.render(histograms.read(conn))
    return Response(body, mimetype="text/plain; version=0.0.4")


def _authorized(token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (scheme case-insensitive)."""
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
