"""One attempt as people follow it: the job's ids on every line its handler logs, a
consumer span when tracing is on, and one line when it ends.

The worker and `app.jobs.testing.drain` run every attempt through `attempt`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from sqlalchemy import Engine

from app import logs, tracing
from app.config import Settings
from app.jobs.execution import Claimed, Outcome, execute

log = logging.getLogger(__name__)
#: The span of an attempt while tracing is off: none, at no cost.
_UNTRACED: AbstractContextManager[None] = nullcontext()


def attempt(
    job: Claimed,
    engine: Engine,
    settings: Settings,
    report_progress: Callable[[float | None, str | None], None] | None = None,
) -> tuple[Outcome, float]:
    """Run `job` (see `execute`), observed; its outcome and how long it ran, in seconds."""
    started = time.monotonic()
    job_id = str(job.job_id)
    with (
        logs.bound(
            job.payload,
            job_id=job_id,
            job_name=job.name,
            attempt=job.attempt,
            request_id=job.request_id,
            # What the handler enqueues comes from this job (and its request).
            origin=f"job {job_id}",
        ),
        tracing.consuming(job) if tracing.enabled else _UNTRACED as span,
    ):
        outcome = execute(job, engine, settings, report_progress)
        took = time.monotonic() - started
        word = outcome_word(outcome)
        tracing.ended(span, word, outcome.message, outcome.traceback)
        log.info(
            "job %s %s %s on attempt %d in %.3fs, after %.3fs in the queue",
            job_id,
            job.name,
            word,
            job.attempt,
            took,
            job.waited,
            extra={
                "outcome": word,
                "duration_s": round(took, 6),
                "queue_wait_s": round(job.waited, 6),
            },
        )
    return outcome, took


def outcome_word(outcome: Outcome) -> str:
    """`succeeded`, `failed` (for good) or `retrying`, as the cycle will save it."""
    if outcome.ok:
        return "succeeded"
    if outcome.discard or outcome.job.attempt >= outcome.job.max_attempts:
        return "failed"
    return "retrying"
