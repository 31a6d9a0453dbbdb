"""Cron from the dashboard: where every schedule stands, what it made up for, and "run now"."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from app.cron import Schedule, load_schedules, schedules
from app.cron.status import orphans, run_now, standings
from app.jobs import stats
from app.web.db import get_session

bp = Blueprint("cron", __name__, url_prefix="/cron")

RECENT_EVENTS = 20


def _schedules() -> list[Schedule]:
    """The schedules cron runs: the app's own and those in JOB_MODULES, as `flask cron` sees."""
    return load_schedules(current_app.config["PILLARS_SETTINGS"].job_modules)


@bp.get("")
def index() -> ResponseReturnValue:
    session, defined = get_session(), _schedules()
    retention = current_app.config["PILLARS_SETTINGS"].cron_orphan_retention_days
    return render_template(
        "admin/cron.html",
        standings=standings(session, defined),
        orphans=orphans(session, defined, retention),
        retention=retention,
        events=stats.cron_events(session.connection(), RECENT_EVENTS),
    )


@bp.post("/<name>/run")
def run(name: str) -> ResponseReturnValue:
    """Enqueue the schedule's job once, now; its own occurrences go on as before."""
    if name not in {schedule.name for schedule in _schedules()}:
        abort(404, f"There is no schedule named {name[:100]!r}.")
    session = get_session()
    job_id = run_now(session, schedules.get(name))
    session.commit()
    flash(f"Schedule {name}: job {job_id} enqueued to run now.")
    return redirect(url_for(".index"), 303)
