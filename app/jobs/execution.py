"""Running one claimed job and turning whatever happened into an `Outcome`.

Everything a handler can do wrong ends here as a recorded outcome, never as
an exception in the worker: an unknown name, a payload that no longer fits,
a raise, a timeout, a result that is not JSON.
"""

from __future__ import annotations

import inspect
import logging
import random
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine

from app.config import Settings
from app.jobs import payloads
from app.jobs.context import JobContext
from app.jobs.errors import Discard, InvalidPayload, JobTimeout, Retry, UnknownJob
from app.jobs.options import storable
from app.jobs.redact import redact
from app.jobs.registry import registry

log = logging.getLogger(__name__)

#: Tracebacks are kept per attempt; a runaway recursion must not bloat the row.
MAX_TRACEBACK_CHARS = 8_000
#: Results are for callers polling a job, not a data store.
MAX_RESULT_BYTES = 1024 * 1024
MAX_RESULT_DEPTH = 100


class Claimed(NamedTuple):
    """A job this process holds: the fence (`job_id`, `attempt`) plus the message.

    A named tuple, not a frozen dataclass: as immutable, and built in a
    third of the time (a frozen dataclass sets each field through
    `object.__setattr__`), which a worker pays for every job it claims.
    """

    job_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    queue: str
    attempt: int
    max_attempts: int
    scheduled_for: datetime | None = None
    #: Why the row cannot be run at all (an unreadable payload), if so.
    problem: str | None = None
    #: Higher first, also among the jobs a worker holds but has not started yet.
    priority: int = 0
    #: Seconds the job waited in the queue, from due to claimed.
    waited: float = 0.0
    #: Seconds from enqueued to claimed.
    age: float = 0.0
    #: The request it came from, and its enqueuer's trace context (W3C, as JSON text).
    request_id: str | None = None
    trace_context: str | None = None

    @property
    def key(self) -> tuple[uuid.UUID, int]:
        return (self.job_id, self.attempt)


class Outcome(NamedTuple):
    """What became of one attempt; `ok` outcomes carry the JSON result. (A named
    tuple, as `Claimed` is: one is built for every attempt.)"""

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
        tb = storable(redact(tb, job.payload))
        if len(tb) > MAX_TRACEBACK_CHARS:
            tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
    message = storable(redact(message, job.payload))[:MAX_TRACEBACK_CHARS]
    return Outcome(job, ok=False, message=message, traceback=tb, **kw)


def said(value: object) -> str:
    """`str(value)`, or words that say it has none: an exception (or a reason) whose
    `__str__` raises must still leave its attempt recorded."""
    try:
        return str(value)
    except Exception:
        return f"<str() failed: {type(value).__name__}>"


def execute(
    job: Claimed,
    engine: Engine,
    settings: Settings,
    report_progress: Callable[[float | None, str | None], None] | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Run `job`'s handler and return its outcome; never raises for the handler's faults.

    A job that can never run as it is (its payload unreadable or not fitting
    the handler) fails on its first attempt: retrying cannot help. An unknown
    name is retried, since a worker of a newer release may know it.
    `engine` and `settings` reach handlers that ask for a `JobContext`.
    """
    if job.problem is not None:
        return _cannot_run(job, job.problem, discard=True)
    try:
        spec = registry.get(job.name)
    except UnknownJob as exc:
        return _cannot_run(job, str(exc), discard=False)
    try:
        payload = spec.check_payload(job.payload)
    except InvalidPayload as exc:
        return _cannot_run(job, str(exc), discard=True)
    except Exception as exc:  # a payload odd enough to break the check itself
        return _cannot_run(job, f"the payload cannot be checked: {type(exc).__name__}", True)
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
            engine=engine,
            settings=settings,
        )
    try:
        result = spec.func(**kwargs)
    except Retry as exc:
        outcome = failure(job, f"retry requested: {said(exc.reason)}", delay=exc.delay)
        log.info(
            "job %s %s asked for a retry in %.1fs: %s",
            job.job_id,
            job.name,
            exc.delay,
            outcome.message,
        )
        return outcome
    except Discard as exc:
        outcome = failure(job, f"discarded: {said(exc.reason)}", discard=True)
        log.warning("job %s %s %s", job.job_id, job.name, outcome.message)
        return outcome
    except JobTimeout:
        limit = spec.timeout if timeout is None else timeout
        log.error("job %s %s timed out after %ss", job.job_id, job.name, limit)
        return failure(job, f"timed out after {limit} s", traceback.format_exc())
    except BaseException as exc:  # noqa: BLE001 (SystemExit, KeyboardInterrupt too: the handler's own)
        outcome = failure(job, f"{type(exc).__name__}: {said(exc)}", traceback.format_exc())
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
    if inspect.isawaitable(result) or inspect.isgenerator(result) or inspect.isasyncgen(result):
        kind = "a coroutine" if inspect.iscoroutine(result) else type(result).__name__
        if inspect.iscoroutine(result) or inspect.isgenerator(result):
            result.close()  # no "never awaited" warning: the failure says it
        return _cannot_run(
            job,
            f"the handler returned {kind}, whose body never ran: handlers are plain "
            "functions that do their work before they return",
            discard=True,
        )
    return Outcome(job, ok=True, result=_encode_result(job, result))


def _cannot_run(job: Claimed, reason: str, discard: bool) -> Outcome:
    outcome = failure(job, reason, discard=discard)
    log.error(
        "job %s %s cannot run%s: %s",
        job.job_id,
        job.name,
        "" if discard else " here (retried later)",
        outcome.message,
    )
    return outcome


def _encode_result(job: Claimed, result: object) -> str | None:
    """The result as JSON the table takes, or None (with a warning) if it cannot be stored."""
    if result is None:
        return None
    try:
        return payloads.to_json(
            result, "the result", max_depth=MAX_RESULT_DEPTH, max_bytes=MAX_RESULT_BYTES
        )
    except InvalidPayload as exc:
        log.warning("job %s %s: %s; not stored", job.job_id, job.name, exc)
        return None
    except Exception as exc:  # an object whose own code fails: the job still succeeded
        log.warning(
            "job %s %s: the result cannot be encoded (%s: %s); not stored",
            job.job_id,
            job.name,
            type(exc).__name__,
            said(exc),
        )
        return None
