"""Handlers the benchmark's worker processes run (JOB_MODULES=bench.jobs)."""

from __future__ import annotations

import time

from app.jobs import job


@job("bench.noop")
def noop() -> None:
    """Nothing: the drain rate is the queue's own cost."""


@job("bench.pickup")
def pickup(t: float) -> float:
    """Return seconds from enqueue commit to handler start; stored as the job's result."""
    return time.time() - t
