"""The job list, filtered and keyset-paginated, and one job's whole story."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue

from app.jobs import stats
from app.models import JOB_STATES
from app.web.admin import params
from app.web.db import get_session

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

PAGE_SIZE = 50
#: States in which the page is worth refreshing by itself (see admin.js).
LIVE_STATES = ("queued", "running")


@bp.get("")
def index() -> ResponseReturnValue:
    """Newest first; "next page" carries the last row's cursor, so any page costs the first's."""
    where, after = params.job_filter(), params.cursor()
    rows, following = stats.list_jobs(get_session().connection(), where, after, PAGE_SIZE)
    return render_template(
        "admin/jobs.html",
        rows=rows,
        where=where,
        states=JOB_STATES,
        after=after,
        next_cursor=None if following is None else following.encode(),
    )


@bp.get("/<job_id>")
def show(job_id: str) -> ResponseReturnValue:
    """Payload and result (masked), attempts, timeline and every error with its traceback."""
    job = stats.job_detail(get_session().connection(), params.job_id(job_id))
    if job is None:
        abort(404, "There is no such job: it may have been deleted or pruned.")
    return render_template("admin/job.html", job=job, live=job.state in LIVE_STATES)
