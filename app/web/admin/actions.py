"""What an admin can do to jobs and queues. Every action is a POST (see `access`).

Each view changes what it was asked to, commits, flashes a sentence saying
what happened (or why nothing did), and redirects with 303, so reloading
the page that follows never repeats the action.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from app.jobs import audit, operations, pause_queue, resume_queue, stats
from app.jobs.audit import Actor
from app.jobs.stats import JobFilter
from app.web.admin import params
from app.web.db import get_session
from app.web.users import require_user

bp = Blueprint("actions", __name__)

Operation = Callable[..., bool]


def actor() -> Actor:
    """The signed-in admin, as the record of actions names them."""
    return Actor(require_user().email, "dashboard")


def _act(raw: str, operation: Operation, done: str, refused: str) -> tuple[uuid.UUID, bool]:
    """Run `operation` on one job, commit and flash the outcome; 404 for an unknown job."""
    job_id, session = params.job_id(raw), get_session()
    job = stats.job_detail(session.connection(), job_id)
    if job is None:
        abort(404, "There is no such job: it may have been deleted or pruned.")
    if operation(session, job_id, by=actor()):
        session.commit()
        flash(f"Job {job_id} ({job.name}) {done}.")
        return job_id, True
    flash(f"Job {job_id} ({job.name}) is {job.state}: {refused}.")
    return job_id, False


def _to_job(job_id: uuid.UUID) -> ResponseReturnValue:
    return redirect(url_for("admin.jobs.show", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str) -> ResponseReturnValue:
    """Failed or cancelled jobs only; refused while another live job holds its unique key."""
    refused = (
        "only failed or cancelled jobs can be retried, and only while no live job shares its"
        " key (nor, once cancelled, while its last attempt still runs)"
    )
    found, _ = _act(job_id, operations.retry, "queued again, to run now", refused)
    return _to_job(found)


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> ResponseReturnValue:
    """A running handler is not interrupted: it finishes, and its outcome is dropped."""
    refused = "only queued or running jobs can be cancelled"
    found, _ = _act(job_id, operations.cancel, "cancelled", refused)
    return _to_job(found)


@bp.post("/jobs/<job_id>/delete")
def delete(job_id: str) -> ResponseReturnValue:
    refused = "a running job cannot be deleted; cancel it first"
    found, deleted = _act(job_id, operations.delete, "deleted", refused)
    return redirect(url_for("admin.jobs.index"), 303) if deleted else _to_job(found)


#: What each action on selected rows does, in the flash message's words.
DONE = {"retry": "queued again", "cancel": "cancelled", "delete": "deleted"}
SUITS = {
    "retry": "only failed or cancelled jobs can be retried",
    "cancel": "only queued or running jobs can be cancelled",
    "delete": "running jobs cannot be deleted",
}


def _back_to_list(where: JobFilter) -> ResponseReturnValue:
    """The list the selection was made on, with its filters (the first page: rows moved)."""
    kept = {k: getattr(where, k) for k in ("state", "queue", "name", "payload")}
    return redirect(url_for("admin.jobs.index", **{k: v for k, v in kept.items() if v}), 303)


@bp.post("/jobs/selected")
def selected() -> ResponseReturnValue:
    """Retry, cancel or delete the jobs ticked on a page of the list.

    Each job gets what suits its state now (it may have moved on since the
    page was drawn); the message says how many were changed and how many
    were left as they were.
    """
    action = request.form.get("action", "")
    if action not in DONE:
        abort(400, f"Choose one of {', '.join(DONE)}.")
    where = params.job_filter("form")
    raw = request.form.getlist("job_id")
    if not raw:
        flash("No job was selected: tick the rows to act on first.")
        return _back_to_list(where)
    if len(raw) > operations.MAX_SELECTED:
        abort(400, f"At most {operations.MAX_SELECTED} jobs can be selected at once.")
    job_ids, session = [params.job_id(value) for value in raw], get_session()
    changed = operations.act_on(session, action, job_ids, by=actor())
    session.commit()
    left = len(set(job_ids)) - len(changed)
    message = f"{len(changed):,} job{'' if len(changed) == 1 else 's'} {DONE[action]}."
    if left:
        message += f" {left:,} left as they were: {SUITS[action]}."
    flash(message)
    return _back_to_list(where)


def _matching(count: int, queue: str | None, name: str | None) -> str:
    jobs = "failed job" if count == 1 else "failed jobs"
    where = "".join(f" {k} {v!r}" for k, v in (("in queue", queue), ("named", name)) if v)
    return f"{count:,} {jobs}{where}"


@bp.post("/jobs/failed/retry")
def retry_failed() -> ResponseReturnValue:
    """Every failed job matching the list's queue and name filters, not only those shown."""
    where, session = params.job_filter("form"), get_session()
    count = operations.retry_failed(session, queue=where.queue, name=where.name, by=actor())
    session.commit()
    flash(f"{_matching(count, where.queue, where.name)} queued again.")
    return redirect(url_for("admin.jobs.index", queue=where.queue, name=where.name), 303)


@bp.post("/jobs/failed/delete")
def delete_failed() -> ResponseReturnValue:
    where, session = params.job_filter("form"), get_session()
    count = operations.delete_failed(session, queue=where.queue, name=where.name, by=actor())
    session.commit()
    flash(f"{_matching(count, where.queue, where.name)} deleted.")
    return redirect(url_for("admin.jobs.index", queue=where.queue, name=where.name), 303)


def _queue() -> str:
    return params.text("form", "queue") or abort(400, "Name the queue.")


@bp.post("/queues/pause")
def pause() -> ResponseReturnValue:
    """Workers everywhere stop claiming from the queue; the jobs they run finish."""
    queue, session = _queue(), get_session()
    try:
        paused = pause_queue(session, queue, paused_by=require_user().email)
    except ValueError as exc:
        abort(400, str(exc))
    if not paused:
        flash(f"Queue {queue!r} was paused already: no worker claims from it.")
        return redirect(url_for("admin.overview.index"), 303)
    audit.record(session, actor(), "pause", subject=f"queue {queue!r}")
    session.commit()
    flash(f"Queue {queue!r} paused: no worker claims from it until it is resumed.")
    return redirect(url_for("admin.overview.index"), 303)


@bp.post("/queues/resume")
def resume() -> ResponseReturnValue:
    queue, session = _queue(), get_session()
    try:
        resumed = resume_queue(session, queue)
    except ValueError as exc:
        abort(400, str(exc))
    if not resumed:
        flash(f"Queue {queue!r} was not paused.")
        return redirect(url_for("admin.overview.index"), 303)
    audit.record(session, actor(), "resume", subject=f"queue {queue!r}")
    session.commit()
    flash(f"Queue {queue!r} resumed: workers claim from it again.")
    return redirect(url_for("admin.overview.index"), 303)
