"""Flow control: concurrency keys, ordering keys and queue limits, across every worker.

Keys. A job enqueued with a `concurrency_key` ("user:7", limit 1) or an
`ordering_key` (limit 1, in order) starts in state `waiting`. The promoter
lets waiting jobs in (state `queued`) while their key has fewer *active* jobs
than its limit: queued, running, or, for an ordering key that blocks on
failure, failed. It works one key at a time under a transaction advisory
lock and counts active jobs with a snapshot taken after the lock, so no two
promoters can let the same key exceed its limit, on any number of machines.
Counts are read from the jobs themselves, never kept apart, so a crash can
leak nothing: a rescued job stays active, a finished one frees its place.
A key with a backlog has at most its limit of jobs among the ready ones, and
each job let in joins the back of the line: keys take turns.

Queue limits. A queue with limits (at most N running, a rate with a burst)
is left out of the ordinary claim and claimed from by one worker at a time,
under a row lock on its limits; running jobs are counted and the rate's
token bucket drawn from in the statement after the lock.

Jobs without keys in queues without limits pay for none of this: they are
claimed by the one-statement cycle as before. The worker's side (promote,
claim from a limited queue) is in `app.jobs.claims`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.jobs import options, sql

MAX_KEY_BYTES = 256
MAX_LIMIT = 10_000
#: The slowest rate a queue may have, one job a year: 320 zeros after the point
#: was taken and stopped the queue for good after its first job.
MIN_RATE = 1 / (365 * 86_400)
ON_FAILURE = ("continue", "block")

_TEMPLATE = string.Formatter()


@dataclass(frozen=True)
class Flow:
    """The flow columns of one job: its key, the key's limit and what kind of key it is."""

    key: str
    limit: int
    kind: str  # 'concurrency', 'ordering' or 'ordering_block'

    def columns(self) -> dict[str, object]:
        return {"flow_key": self.key, "flow_limit": self.limit, "flow_kind": self.kind}


NO_FLOW: dict[str, object] = {"flow_key": None, "flow_limit": None, "flow_kind": None}


def resolve(
    payload: Mapping[str, Any],
    *,
    concurrency_key: str | None,
    concurrency_limit: int | None,
    ordering_key: str | None,
    on_failure: str | None,
) -> Flow | None:
    """The job's flow from its options (already merged with the handler's defaults)."""
    if concurrency_key is not None and ordering_key is not None:
        raise ValueError("give a concurrency_key or an ordering_key, not both")
    if ordering_key is not None:
        policy = on_failure or "continue"
        if policy not in ON_FAILURE:
            raise ValueError(
                f"on_failure must be 'continue' or 'block', got {options.short(policy)}"
            )
        kind = "ordering" if policy == "continue" else "ordering_block"
        return Flow(_key(ordering_key, payload, "ordering_key"), 1, kind)
    if concurrency_key is not None:
        limit = options.whole(
            1 if concurrency_limit is None else concurrency_limit,
            "concurrency_limit",
            1,
            MAX_LIMIT,
        )
        return Flow(_key(concurrency_key, payload, "concurrency_key"), limit, "concurrency")
    if concurrency_limit is not None or on_failure is not None:
        raise ValueError("concurrency_limit and on_failure need a key to apply to")
    return None


def _key(source: str, payload: Mapping[str, Any], what: str) -> str:
    """The key itself: `source`, with `{name}` filled from the payload (a template)."""
    if not isinstance(source, str):
        raise ValueError(f"{what} must be a string, got {options.short(source)}")
    if "{" in source:
        check_template(source, what)
        try:
            source = source.format_map(payload)
        except (KeyError, ValueError, TypeError) as exc:  # "{x:,}" with x a list: TypeError
            raise ValueError(f"{what} {source!r} does not fit the payload: {exc}") from None
    return options.text(source, what, max_bytes=MAX_KEY_BYTES)


def check_template(source: str, what: str) -> None:
    """A key template may name payload keys, nothing else ({user_id}, not {user.id})."""
    try:
        fields = [field for _, field, spec, _ in _TEMPLATE.parse(source) if field is not None]
    except ValueError as exc:
        raise ValueError(f"{what} {source!r} is not a valid template: {exc}") from None
    for field in fields:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
            raise ValueError(f"{what} {source!r} may only name payload keys, like {{user_id}}")


RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(text: str) -> float:
    """'10/s', '600/m', '5/h' as jobs per second."""
    match = RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"a rate reads like 10/s, 600/m or 5/h, got {options.short(text)}")
    per_second = float(match.group(1)) / _PER[match.group(2)]
    if not MIN_RATE <= per_second <= 1_000_000:
        raise ValueError(
            f"a rate must be at least one job a year and at most 1,000,000/s, got {text}"
        )
    return per_second


def set_limit(
    session: Session,
    queue: str,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    burst: int | None = None,
    set_by: str = "",
) -> None:
    """Limit `queue` across every worker; does not commit. A rate's burst defaults to 1 s worth."""
    options.queue_name(queue)
    if concurrency is None and rate is None:
        raise ValueError("give a concurrency limit, a rate, or both (or clear the limits)")
    if concurrency is not None:
        options.whole(concurrency, "concurrency", 1, MAX_LIMIT)
    if rate is not None and not (isinstance(rate, int | float) and MIN_RATE <= rate <= 1_000_000):
        raise ValueError(
            f"rate must be at least one job a year and at most 1,000,000 jobs/s, got {rate!r}"
        )
    if burst is not None and rate is None:
        raise ValueError("a burst needs a rate")
    if rate is not None:
        burst = options.whole(
            burst if burst is not None else max(1, round(rate)), "burst", 1, 1_000_000
        )
    params = {
        "queue": queue,
        "concurrency": concurrency,
        "rate": rate,
        "burst": burst,
        "set_by": options.text(set_by, "set_by", max_chars=200),
    }
    session.connection().execute(sql.SET_QUEUE_LIMIT, params)


def clear_limit(session: Session, queue: str) -> bool:
    """Lift `queue`'s limits; False if it had none. Does not commit."""
    found = session.connection().execute(
        sql.CLEAR_QUEUE_LIMIT, {"queue": options.queue_name(queue)}
    )
    return found.first() is not None


def limits(conn: Connection) -> dict[str, dict[str, Any]]:
    """Every queue's limits, for the CLI, the dashboard and metrics."""
    rows = conn.execute(sql.QUEUE_LIMITS).mappings()
    return {row["queue"]: dict(row) for row in rows}
