"""The job list, filtered, searched and keyset-paginated, and one job's whole story."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import Connection, exc, text

from app import tracing
from app.db import sqlstate
from app.jobs import audit, counts, holds, stats
from app.models import JOB_STATES
from app.web.admin import params
from app.web.db import get_session

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

PAGE_SIZE = 50
#: States in which a job's page is worth refreshing by itself (see admin.js).
LIVE_STATES = ("waiting", "queued", "running")
#: Seconds between refreshes of the list (a few index scans; see bench/admin.py).
REFRESH = 5
#: A payload search that matches little in a huge table may read a lot; past this
#: it is stopped, and the page says how to narrow it.
SEARCH_TIMEOUT_MS = 3_000
QUERY_CANCELED = "57014"


def _search_bound(conn: Connection) -> None:
    conn.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(SEARCH_TIMEOUT_MS)},
    )


@bp.get("")
def index() -> ResponseReturnValue:
    """Newest first; "next page" carries the last row's cursor, so any page costs the first's."""
    where, after = params.job_filter(), params.cursor()
    session = get_session()
    conn = session.connection()
    rows: list[Any] = []
    following, too_slow = None, False
    tally = None if where.payload else counts.for_filter(conn, where.queue, where.name)
    if where.payload is not None:
        _search_bound(conn)
    try:
        rows, following = stats.list_jobs(conn, where, after, PAGE_SIZE)
    except exc.OperationalError as error:
        if sqlstate(error) != QUERY_CANCELED:
            raise
        session.rollback()
        too_slow = True
    return render_template(
        "admin/jobs.html",
        rows=rows,
        where=where,
        states=JOB_STATES,
        tally=tally,
        after=after,
        next_cursor=None if following is None else following.encode(),
        too_slow=too_slow,
        search_seconds=SEARCH_TIMEOUT_MS / 1000,
        refresh=REFRESH,
    )


@bp.get("/<job_id>")
def show(job_id: str) -> ResponseReturnValue:
    """Payload and result (masked), attempts, timeline, every error, and what people did to it."""
    conn = get_session().connection()
    found = params.job_id(job_id)
    job = stats.job_detail(conn, found)
    if job is None:
        abort(404, "There is no such job: it may have been deleted or pruned.")
    return render_template(
        "admin/job.html",
        job=job,
        live=job.state in LIVE_STATES,
        actions=audit.for_job(conn, found),
        why=holds.why_not_running(conn, found),
        parent=_parent(job.origin),
        trace_id=(trace_id := tracing.trace_id_of(job.trace_context)),
        trace_url=_trace_url(trace_id),
    )


def _parent(origin: str | None) -> str | None:
    """The id of the job that enqueued this one, if a job did."""
    if origin and origin.startswith("job "):
        return origin.removeprefix("job ")
    return None


def _trace_url(trace_id: str | None) -> str | None:
    template: str = current_app.config["PILLARS_SETTINGS"].trace_url_template
    return template.replace("{trace_id}", trace_id) if template and trace_id else None
