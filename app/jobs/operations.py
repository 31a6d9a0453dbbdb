"""What an operator can do to jobs: retry, cancel, delete, one or many at a time.

Each function works inside the caller's session and does not commit, like
`enqueue`: the dashboard and the CLI decide when the change takes effect.
Given `by`, the change is recorded (`audit`) in the same transaction, so
the job page can say who did what and when. Bulk operations go in batches
so that no statement holds thousands of row locks for long.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs import audit, sql
from app.jobs.audit import Actor

BATCH = 5_000
#: Jobs one "selected" action may name: a few pages' worth, never a whole table.
MAX_SELECTED = 500


def retry(session: Session, job_id: uuid.UUID, *, by: Actor | None = None) -> bool:
    """Queue a failed or cancelled job again now; False if it is not in such a state, or
    another live job holds its unique key."""
    params = {"job_id": job_id, "limit": 1}
    done = bool(_retried(session, sql.RETRY_ONE, params))
    if done and by is not None:
        audit.record(session, by, "retry", job_ids=[job_id])
    return done


def cancel(session: Session, job_id: uuid.UUID, *, by: Actor | None = None) -> bool:
    """Cancel a queued or running job; a running handler finishes, its outcome is dropped."""
    done = session.connection().execute(sql.CANCEL, {"job_id": job_id}).first() is not None
    if done and by is not None:
        audit.record(session, by, "cancel", job_ids=[job_id])
    return done


def delete(session: Session, job_id: uuid.UUID, *, by: Actor | None = None) -> bool:
    """Delete a job that is not running."""
    params = {"job_id": job_id, "limit": 1}
    done = bool(session.connection().execute(sql.DELETE_ONE, params).scalar_one())
    if done and by is not None:
        audit.record(session, by, "delete", job_ids=[job_id])
    return done


Operation = Callable[..., bool]
SELECTED: dict[str, Operation] = {"retry": retry, "cancel": cancel, "delete": delete}


def act_on(
    session: Session, action: str, job_ids: Sequence[uuid.UUID], *, by: Actor | None = None
) -> list[uuid.UUID]:
    """Apply `action` (retry, cancel or delete) to each job it suits; returns those it changed.

    Jobs in a state the action does not suit are left as they are (a
    running job is not deleted, a succeeded one not retried).
    """
    if len(job_ids) > MAX_SELECTED:
        raise ValueError(f"at most {MAX_SELECTED:,} jobs at once, not {len(job_ids):,}")
    operation = SELECTED[action]
    return [job_id for job_id in dict.fromkeys(job_ids) if operation(session, job_id, by=by)]


def _filter_words(queue: str | None, name: str | None) -> str:
    words = [f"in queue {queue!r}" if queue else "", f"named {name!r}" if name else ""]
    return " ".join(["every failed job", *filter(None, words)])


def retry_failed(
    session: Session,
    *,
    queue: str | None = None,
    name: str | None = None,
    by: Actor | None = None,
) -> int:
    """Queue every failed job matching the filter again; returns how many."""
    retried: list[uuid.UUID] = []
    params: dict[str, object] = {"queue": queue, "name": name, "limit": BATCH}
    while True:
        rows = _retried(session, sql.RETRY_FAILED, params)
        retried.extend(row.job_id for row in rows)
        # Judged by the jobs the batch looked at (some are held back by a key).
        if not rows or rows[0].candidates < BATCH:
            break
    count = len(retried)
    if retried and by is not None:
        subject = _filter_words(queue, name)
        audit.record(session, by, "retry", job_ids=retried, subject=subject)
    return count


def delete_failed(
    session: Session,
    *,
    queue: str | None = None,
    name: str | None = None,
    by: Actor | None = None,
) -> int:
    """Delete every failed job matching the filter; returns how many."""

    def batch(params: dict[str, object]) -> int:
        return int(session.connection().execute(sql.DELETE_FAILED, params).scalar_one())

    count = _in_batches(batch, queue, name)
    if count and by is not None:
        detail = f"{count:,} job{'' if count == 1 else 's'} deleted"
        audit.record(session, by, "delete", subject=_filter_words(queue, name), detail=detail)
    return count


def _retried(session: Session, statement: Any, params: dict[str, object]) -> list[Row[Any]]:
    """Run a retry statement in a savepoint. Another session retrying a job of the same
    unique key at the same moment makes the index refuse ours: then the batch is run
    again, and now sees that job live (a single retry just comes back empty)."""
    for attempt in range(2):
        try:
            with session.begin_nested():
                return list(session.connection().execute(statement, params).all())
        except IntegrityError:
            if attempt:
                raise
    return []


def _in_batches(
    run: Callable[[dict[str, object]], int], queue: str | None, name: str | None
) -> int:
    """Call `run` on batches of BATCH until one comes back short; the total it reports."""
    total = 0
    while True:
        count = run({"queue": queue, "name": name, "limit": BATCH})
        total += count
        if count < BATCH:
            return total
