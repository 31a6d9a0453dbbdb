"""What a job's options may be: checked in Python, before anything reaches the database.

A value the database refuses (a NUL, an integer past int4, an interval out of
range, an index row too large) aborts the caller's whole transaction, and a
caller that catches the error and commits then loses its own writes without
a word. So every option is checked here and refused with a `ValueError` that
names it; the payload has its own rules (`app.jobs.payloads`).
"""

from __future__ import annotations

import math
import re
import reprlib
from datetime import UTC, datetime, timedelta

#: A queue name: what `--queues a,b`, URLs and metrics labels can all carry.
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
#: A job name: printable, no spaces, like `reports.build`.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}")


def _repr() -> reprlib.Repr:
    quoting = reprlib.Repr()
    quoting.maxlevel, quoting.maxstring, quoting.maxother, quoting.maxlong = 2, 60, 60, 60
    return quoting


#: Quotes a bad value in a message without ever costing more than a glance.
short = _repr().repr

INT4 = (-(2**31), 2**31 - 1)
MAX_ATTEMPTS = 1_000_000
#: Longest delay: far enough for any reminder, short of PostgreSQL's interval range.
MAX_DELAY = timedelta(days=36_525)
#: Times Python can read back in every timezone (the jobs table checks the same).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
MAX_UNIQUE_KEY_BYTES = 1024
MAX_CONTEXT_CHARS = 10_000
#: A schedule's name (`app.cron.schedules` allows 200 characters) keys an index.
MAX_CRON_NAME_CHARS = 200


def queue_name(value: object, what: str = "queue") -> str:
    """Return `value` if it is a valid queue name, else raise naming the rule."""
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        raise ValueError(
            f"{what} must be 1-64 letters, digits or _ . : - (starting with a letter or "
            f"digit), got {short(value)}"
        )
    return value


def job_name(value: object) -> str:
    if not isinstance(value, str) or not JOB_NAME.fullmatch(value):
        raise ValueError(
            "a job name must be 1-200 letters, digits or _ . : / - (starting with a letter "
            f"or digit), got {short(value)}"
        )
    return value


def whole(value: object, what: str, low: int, high: int) -> int:
    """An int (never a bool) within [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number, got {short(value)}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value}")
    return value


def delay_seconds(delay: object) -> float:
    """Seconds from a number or timedelta: finite, not negative, at most `MAX_DELAY`."""
    if delay is None:
        return 0.0
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        try:
            seconds = float(delay)
        except OverflowError:  # an int past a float's range: past MAX_DELAY too
            seconds = math.inf
    else:
        raise ValueError(f"delay must be seconds or a timedelta, got {short(delay)}")
    if math.isnan(seconds):
        raise ValueError("delay must be a number of seconds, got NaN")
    if seconds < 0:
        raise ValueError(f"delay must not be negative, got {seconds}")
    if seconds > MAX_DELAY.total_seconds():
        raise ValueError(f"delay must be at most {MAX_DELAY.days} days, got {seconds} s")
    return seconds


def moment(value: object, what: str) -> datetime | None:
    """A timezone-aware datetime within the range the table accepts, or None."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {short(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (naive times are ambiguous)")
    try:
        inside = EARLIEST <= value.astimezone(UTC) <= LATEST
    except OverflowError:  # before year 1 or after 9999 in UTC
        inside = False
    if not inside:
        raise ValueError(f"{what} must be between years 1 and 9999, got {value.isoformat()}")
    return value


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: NUL and lone surrogates shown escaped."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def text(value: object, what: str, *, max_bytes: int | None = None, max_chars: int = 0) -> str:
    """A string PostgreSQL can store: no NUL, no lone surrogate, within its length limit."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {short(value)}")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain a NUL character (\\x00)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains a lone surrogate (not valid Unicode)") from None
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{what} must be at most {max_bytes} bytes, got {size}")
    if max_chars and len(value) > max_chars:
        raise ValueError(f"{what} must be at most {max_chars} characters, got {len(value)}")
    return value
