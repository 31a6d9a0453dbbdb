"""Running one claimed job and turning whatever happened into an `Outcome`.

Everything a handler can do wrong ends here as a recorded outcome, never as
an exception in the worker: an unknown name, a payload that no longer fits,
a raise, a timeout, a result that is not JSON.
"""

from __future__ import annotations

import json
import logging
import random
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.jobs.context import JobContext
from app.jobs.errors import Discard, InvalidPayload, JobTimeout, Retry, UnknownJob
from app.jobs.redact import redact
from app.jobs.registry import registry

log = logging.getLogger(__name__)

#: Tracebacks are kept per attempt; a runaway recursion must not bloat the row.
MAX_TRACEBACK_CHARS = 8_000


@dataclass(frozen=True)
class Claimed:
    """A job this process holds: the fence (`job_id`, `attempt`) plus the message."""

    job_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    queue: str
    attempt: int
    max_attempts: int
    scheduled_for: datetime | None = None

    @property
    def key(self) -> tuple[uuid.UUID, int]:
        return (self.job_id, self.attempt)


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt; `ok` outcomes carry the JSON result."""

    job: Claimed
    ok: bool
    result: str | None = None
    message: str = ""
    traceback: str | None = None
    delay: float = 0.0
    discard: bool = False


def backoff(attempt: int, *, base: float = 2.0, cap: float = 3600.0) -> float:
    """Seconds before retrying after `attempt` failed: exponential, capped, with jitter.

    Jitter (±25 %) spreads out the retries of many jobs that failed together,
    e.g. when a downstream service came back.
    """
    delay = min(cap, base * float(2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.75, 1.25)


def failure(job: Claimed, message: str, tb: str | None = None, **kw: Any) -> Outcome:
    """An outcome for a failed attempt, with the payload's secrets cut out of the text."""
    kw.setdefault("delay", backoff(job.attempt))
    if tb is not None:
        tb = redact(tb, job.payload)
        if len(tb) > MAX_TRACEBACK_CHARS:
            tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
    return Outcome(job, ok=False, message=redact(message, job.payload), traceback=tb, **kw)


def execute(
    job: Claimed,
    report_progress: Callable[[float | None, str | None], None] | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Run `job`'s handler and return its outcome; never raises for the handler's faults."""
    try:
        spec = registry.get(job.name)
        payload = spec.check_payload(job.payload)
    except (UnknownJob, InvalidPayload) as exc:
        outcome = failure(job, str(exc))
        log.error("job %s %s cannot run: %s", job.job_id, job.name, outcome.message)
        return outcome
    kwargs = dict(payload)
    if spec.context_param is not None:
        kwargs[spec.context_param] = JobContext(
            job.job_id,
            job.name,
            job.queue,
            job.attempt,
            job.max_attempts,
            job.scheduled_for,
            report_progress or (lambda fraction, message: None),
        )
    try:
        result = spec.func(**kwargs)
    except Retry as exc:
        log.info(
            "job %s %s asked for a retry in %.1fs: %s", job.job_id, job.name, exc.delay, exc.reason
        )
        return failure(job, f"retry requested: {exc.reason}", delay=exc.delay)
    except Discard as exc:
        log.warning("job %s %s discarded: %s", job.job_id, job.name, exc.reason)
        return failure(job, f"discarded: {exc.reason}", discard=True)
    except JobTimeout:
        limit = spec.timeout if timeout is None else timeout
        log.error("job %s %s timed out after %ss", job.job_id, job.name, limit)
        return failure(job, f"timed out after {limit} s", traceback.format_exc())
    except (Exception, SystemExit) as exc:
        outcome = failure(job, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        # Logged from the outcome, not with log.exception: the raw traceback
        # may quote a secret from the payload.
        log.error(
            "job %s %s failed on attempt %d: %s\n%s",
            job.job_id,
            job.name,
            job.attempt,
            outcome.message,
            outcome.traceback,
        )
        return outcome
    return Outcome(job, ok=True, result=_encode_result(job, result))


def _encode_result(job: Claimed, result: object) -> str | None:
    if result is None:
        return None
    try:
        return json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        log.warning(
            "job %s %s returned a result that is not JSON (%s); not stored",
            job.job_id,
            job.name,
            exc,
        )
        return None
