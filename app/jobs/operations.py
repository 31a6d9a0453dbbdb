"""What an operator can do to jobs: retry, cancel, delete, one or many at a time.

Each function works inside the caller's session and does not commit, like
`enqueue`: the dashboard and the CLI decide when the change takes effect.
Bulk operations go in batches so that no statement holds thousands of row
locks for long.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.jobs import sql

BATCH = 5_000


def retry(session: Session, job_id: uuid.UUID) -> bool:
    """Queue a failed or cancelled job again now; False if it is not in such a state."""
    params = {"job_id": job_id, "limit": 1}
    return session.connection().execute(sql.RETRY_ONE, params).first() is not None


def cancel(session: Session, job_id: uuid.UUID) -> bool:
    """Cancel a queued or running job; a running handler finishes, its outcome is dropped."""
    found = session.connection().execute(sql.CANCEL, {"job_id": job_id}).first()
    return found is not None


def delete(session: Session, job_id: uuid.UUID) -> bool:
    """Delete a job that is not running."""
    params = {"job_id": job_id, "limit": 1}
    return bool(session.connection().execute(sql.DELETE_ONE, params).scalar_one())


def retry_failed(session: Session, *, queue: str | None = None, name: str | None = None) -> int:
    """Queue every failed job matching the filter again; returns how many."""

    def batch(params: dict[str, object]) -> int:
        return len(session.connection().execute(sql.RETRY_FAILED, params).all())

    return _in_batches(batch, queue, name)


def delete_failed(session: Session, *, queue: str | None = None, name: str | None = None) -> int:
    """Delete every failed job matching the filter; returns how many."""

    def batch(params: dict[str, object]) -> int:
        return int(session.connection().execute(sql.DELETE_FAILED, params).scalar_one())

    return _in_batches(batch, queue, name)


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
