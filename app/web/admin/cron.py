"""Cron from the dashboard: every schedule's standing and newest jobs, run now, pause, resume.

The actions are POSTs under the admin blueprint, so they pass the same
guard as every other action (`access.guard`: admin, CSRF token, this site's
Origin); each commits, flashes what happened and redirects with 303.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from app.cron import Schedule, ScheduleError, control, load_schedules, schedules
from app.cron.status import orphans, recent_events, run_now, standings
from app.jobs import audit
from app.web.admin.actions import actor
from app.web.db import get_session
from app.web.users import require_user

bp = Blueprint("cron", __name__, url_prefix="/cron")

RECENT_EVENTS = 20
#: Seconds between refreshes of the page: a few cheap queries (one index scan per schedule).
REFRESH = 5


def _schedules() -> list[Schedule]:
    """The schedules cron runs: the app's own and those in JOB_MODULES, as `flask cron` sees."""
    return load_schedules(current_app.config["PILLARS_SETTINGS"].job_modules)


@bp.get("")
def index() -> ResponseReturnValue:
    session = get_session()
    retention = current_app.config["PILLARS_SETTINGS"].cron_orphan_retention_days
    try:
        defined = _schedules()
    except ScheduleError as error:  # the page still shows what cron has recorded
        flash(f"The schedules could not be loaded: {error}")
        defined = []
    return render_template(
        "admin/cron.html",
        standings=standings(session, defined),
        orphans=orphans(session, defined, retention) if defined else [],
        retention=retention,
        events=recent_events(session.connection(), RECENT_EVENTS),
        refresh=REFRESH,
    )


def _schedule(name: str) -> Schedule:
    if name not in {schedule.name for schedule in _schedules()}:
        abort(404, f"There is no schedule named {name[:100]!r}.")
    return schedules.get(name)


@bp.post("/<name>/run")
def run(name: str) -> ResponseReturnValue:
    """Enqueue the schedule's job once, now; its own occurrences go on as before."""
    schedule, session = _schedule(name), get_session()
    job_id = run_now(session, schedule)
    audit.record(session, actor(), "run", job_ids=[job_id], subject=f"schedule {name}")
    session.commit()
    flash(f"Schedule {name}: job {job_id} enqueued to run now.")
    return redirect(url_for(".index"), 303)


@bp.post("/<name>/pause")
def pause(name: str) -> ResponseReturnValue:
    """Every cron process skips the schedule's occurrences (recording them) until resumed."""
    schedule, session = _schedule(name), get_session()
    if control.pause(session, schedule, by=require_user().email):
        audit.record(session, actor(), "pause", subject=f"schedule {name}")
        session.commit()
        flash(f"Schedule {name} paused: its occurrences are skipped until it is resumed.")
    else:
        flash(f"Schedule {name} was paused already.")
    return redirect(url_for(".index"), 303)


@bp.post("/<name>/resume")
def resume(name: str) -> ResponseReturnValue:
    schedule, session = _schedule(name), get_session()
    if control.resume(session, schedule):
        audit.record(session, actor(), "resume", subject=f"schedule {name}")
        session.commit()
        flash(f"Schedule {name} resumed: it runs again from its next occurrence.")
    else:
        flash(f"Schedule {name} was not paused.")
    return redirect(url_for(".index"), 303)
