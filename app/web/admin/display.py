"""How the dashboard writes times, ages and JSON documents for people."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.jobs.redact import mask


def moment(value: datetime | str | None) -> str:
    """A database time to the second, in UTC whatever the session's time zone.

    Times inside JSON documents (an error's `at`) arrive as ISO strings.
    """
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            return moment(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """An age such as '4 min 05 s': coarse enough to read at a glance, exact enough to act on."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02} min"
    if minutes:
        return f"{minutes} min {secs:02} s"
    return f"{secs} s"


def ago(seconds: float | None) -> str:
    """How long ago, from an age in seconds the database computed: '4 min 05 s ago'."""
    if seconds is None:
        return "—"
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"


#: Characters of a payload shown in the job list; the job's page has all of it.
PREVIEW = 80


def preview(value: Any, size: int | None = None) -> str:
    """A payload on one line, secrets masked, cut to PREVIEW characters.

    `value` is None when the list left a large payload out (see
    `stats.PREVIEW_BYTES`); `size` then says how large it is.
    """
    if value is None:
        return "—" if size is None else f"({size:,} bytes: open the job to see it)"
    text = json.dumps(mask(value), sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def approximately(value: int, estimated: bool) -> str:
    """A count, with ≈ before it when it is an estimate (see `app.jobs.counts`)."""
    return f"≈{value:,}" if estimated else f"{value:,}"


def document(value: Any) -> str:
    """A payload or result as indented JSON, secret-looking keys masked.

    Masking happens here, at the one place the dashboard turns a document
    into text, so no page can show a secret by forgetting to.
    """
    return json.dumps(mask(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)


def number(value: int) -> str:
    return f"{value:,}"


FILTERS: dict[str, Callable[..., str]] = {
    "moment": moment,
    "duration": duration,
    "document": document,
    "number": number,
    "ago": ago,
    "preview": preview,
    "approximately": approximately,
}
