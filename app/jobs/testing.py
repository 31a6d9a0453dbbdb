"""Helpers for testing an app that enqueues jobs: run the queue here, check what was sent.

`drain` runs due jobs in the test process with the same claim, execute and
save steps as the worker, so a test sees exactly what production would do,
minus threads and timing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import claims, observed
from app.models import Job


@dataclass
class Drained:
    """What `drain` did, by job id."""

    succeeded: list[uuid.UUID] = field(default_factory=list)
    retried: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.succeeded) + len(self.retried) + len(self.failed)


def drain(
    engine: Engine,
    *,
    queues: Sequence[str] | None = None,
    max_jobs: int = 10_000,
    settings: Settings | None = None,
) -> Drained:
    """Run due jobs one at a time until none is due; return what happened.

    Jobs a failure pushed into the future (backoff) are not due, so they stop
    the drain rather than spin it. Commits as it goes, like the worker.
    Handlers get `engine` and `settings` (by default, read from the
    environment now, not the process's cached settings) in their `JobContext`.
    """
    settings = settings or Settings.from_env()
    worker_id = f"drain:{uuid.uuid4().hex[:8]}"
    drained = Drained()
    while drained.total < max_jobs:
        claims.promote(engine)
        with engine.begin() as conn:
            found = claims.cycle(conn, worker_id, (), queues, 1)
        batch = found.claimed
        for queue in found.limited if not batch else ():
            batch = batch or claims.claim_limited(engine, worker_id, queue, 1)
        if not batch:
            break
        outcome, _ = observed.attempt(batch[0], engine, settings)
        with engine.begin() as conn:
            saved = claims.save_outcomes(conn, worker_id, [outcome])
        drained.succeeded += saved.succeeded
        drained.retried += saved.retried
        drained.failed += saved.failed
    return drained


def enqueued_jobs(
    session: Session, name: str, payload: Mapping[str, Any] | None = None
) -> list[Job]:
    """Return jobs named `name` not yet started (queued, or waiting for their flow key)
    whose payload contains `payload` (JSON containment)."""
    query = select(Job).where(Job.name == name, Job.state.in_(("waiting", "queued")))
    if payload is not None:
        query = query.where(Job.payload.contains(dict(payload)))
    return list(session.scalars(query.order_by(Job.created_at)))


def assert_enqueued(
    session: Session, name: str, payload: Mapping[str, Any] | None = None, *, count: int = 1
) -> list[Job]:
    """Assert that exactly `count` queued jobs match; the message lists what is queued."""
    found = enqueued_jobs(session, name, payload)
    if len(found) != count:
        queued = session.execute(
            select(Job.name, Job.payload).where(Job.state.in_(("waiting", "queued")))
        )
        listing = "\n".join(f"  {n} {p}" for n, p in queued) or "  (nothing queued)"
        raise AssertionError(
            f"expected {count} queued {name!r} job(s) with payload ⊇ {payload}, "
            f"found {len(found)}; queued:\n{listing}"
        )
    return found
