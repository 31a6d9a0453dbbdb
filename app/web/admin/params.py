"""Reading the dashboard's URL and form parameters: anything malformed is a 400, never a 500."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from flask import abort, request

from app.jobs.payloads import has_lone_surrogate
from app.jobs.redact import is_secret, scrub
from app.jobs.stats import Cursor, JobFilter
from app.models import JOB_STATES

#: Longer than any queue or job name anyone writes; longer input is a mistake or an attack.
MAX_NAME = 200
#: A payload search is a small JSON object someone typed.
MAX_SEARCH = 1_000
MAX_SEARCH_DEPTH = 8


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
    return JobFilter(
        state=state,
        queue=text(source, "queue"),
        name=text(source, "name"),
        payload=payload(source),
    )


class SearchError(ValueError):
    """A payload search that cannot be run; the message says why, for the person who typed it."""


def payload(source: str = "args") -> str | None:
    """The payload search (a JSON object the payload must contain), canonical; None when empty."""
    values = request.args if source == "args" else request.form
    raw = values.get("payload", "").strip()
    if not raw:
        return None
    try:
        return search_document(raw)
    except SearchError as error:
        abort(400, f"The payload search {raw[:80]!r} cannot be run: {error}")


def _refuse_constant(name: str) -> Any:
    raise SearchError(f"{name} is not a number JSON (or PostgreSQL) knows")


def search_document(raw: str) -> str:
    """Check a typed payload search and return it as canonical JSON text.

    Refused: anything but a JSON object of at most MAX_SEARCH characters and
    MAX_SEARCH_DEPTH levels; NaN, Infinity and numbers beyond a double; NUL
    and lone surrogates anywhere (jsonb cannot hold them); and secret-looking
    keys or passwords in URLs, which the dashboard masks: searching by them
    would tell their values one guess at a time.
    """
    if len(raw) > MAX_SEARCH:
        raise SearchError(f"it is longer than {MAX_SEARCH:,} characters")
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise SearchError(f"it is not JSON ({str(error)[:80]})") from None
    if not isinstance(document, dict) or not document:
        raise SearchError('write a JSON object such as {"report_id": 7}')
    _check(document, 0)
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _check(value: Any, depth: int) -> None:
    if depth > MAX_SEARCH_DEPTH:
        raise SearchError(f"it is nested deeper than {MAX_SEARCH_DEPTH} levels")
    if isinstance(value, dict):
        for key, inner in value.items():
            if is_secret(key):
                raise SearchError(f"{key[:40]!r} looks secret, and secrets are not searchable")
            _check(key, depth + 1)
            _check(inner, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            _check(inner, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        # 1e309 reads as infinity: a search for it would be sent as "Infinity".
        raise SearchError("it holds too large a number (beyond a double's range)")
    elif isinstance(value, str):
        if "\x00" in value:
            raise SearchError("it holds a NUL character")
        if has_lone_surrogate(value):
            raise SearchError("it holds a lone surrogate (\\ud800-\\udfff): not valid Unicode")
        if scrub(value) != value:
            raise SearchError("it holds a password in a URL, and secrets are not searchable")


def cursor() -> Cursor | None:
    raw = request.args.get("after")
    if not raw:
        return None
    try:
        return Cursor.decode(raw)
    except ValueError:
        abort(400, "This page link is damaged: start again from the first page.")
