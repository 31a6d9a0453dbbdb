"""Queue limits from the dashboard: set and lift them, as `flask jobs limit` does."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue

from app.jobs import audit, flow
from app.web.admin import params
from app.web.admin.actions import actor
from app.web.db import get_session
from app.web.limits_cli import describe
from app.web.users import require_user

bp = Blueprint("limits", __name__)


def _whole(field: str) -> int | None:
    raw = params.text("form", field)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        abort(400, f"{field} must be a whole number, got {raw!r}.")


@bp.post("/queues/limit")
def limit() -> ResponseReturnValue:
    """Limit a queue across every worker: at most N running, a rate with a burst."""
    queue = params.text("form", "queue") or abort(400, "Name the queue.")
    rate = params.text("form", "rate")
    session = get_session()
    try:
        flow.set_limit(
            session,
            queue,
            concurrency=_whole("concurrency"),
            rate=None if rate is None else flow.parse_rate(rate),
            burst=_whole("burst"),
            set_by=require_user().email,
        )
    except ValueError as exc:
        abort(400, str(exc))
    audit.record(session, actor(), "limit", subject=f"queue {queue!r}")
    session.commit()
    flash(describe(queue, flow.limits(session.connection()).get(queue, {})))
    return redirect(url_for("admin.overview.index"), 303)


@bp.post("/queues/unlimit")
def unlimit() -> ResponseReturnValue:
    queue = params.text("form", "queue") or abort(400, "Name the queue.")
    session = get_session()
    try:
        found = flow.clear_limit(session, queue)
    except ValueError as exc:
        abort(400, str(exc))
    if found:
        audit.record(session, actor(), "unlimit", subject=f"queue {queue!r}")
    session.commit()
    flash(f"Queue {queue!r}: limits lifted." if found else f"Queue {queue!r} had no limits.")
    return redirect(url_for("admin.overview.index"), 303)
