"""Reading the dashboard's URL and form parameters: anything malformed is a 400, never a 500."""

from __future__ import annotations

import uuid

from flask import abort, request

from app.jobs.stats import Cursor, JobFilter
from app.models import JOB_STATES

#: Longer than any queue or job name anyone writes; longer input is a mistake or an attack.
MAX_NAME = 200


def job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(400, f"{raw[:60]!r} is not a job id: a job id looks like 0190b8a2-….")


def text(source: str, field: str) -> str | None:
    """A queue or job name from the query string or form; None when empty.

    PostgreSQL text cannot hold NUL, so a NUL would fail in the database.
    """
    values = request.args if source == "args" else request.form
    value = values.get(field, "").strip()
    if len(value) > MAX_NAME or "\x00" in value:
        abort(400, f"The {field} is not a name a job could have.")
    return value or None


def job_filter(source: str = "args") -> JobFilter:
    state = text(source, "state")
    if state is not None and state not in JOB_STATES:
        abort(400, f"There is no job state {state!r}: choose one of {', '.join(JOB_STATES)}.")
    return JobFilter(state=state, queue=text(source, "queue"), name=text(source, "name"))


def cursor() -> Cursor | None:
    raw = request.args.get("after")
    if not raw:
        return None
    try:
        return Cursor.decode(raw)
    except ValueError:
        abort(400, "This page link is damaged: start again from the first page.")
