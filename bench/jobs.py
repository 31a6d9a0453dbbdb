"""Handlers the benchmark's worker processes run (JOB_MODULES=bench.jobs)."""

from __future__ import annotations

import time

from app.jobs import job


@job("bench.noop")
def noop(n: int = 0) -> None:
    """Nothing: the drain rate is the queue's own cost. `n` makes the payload a typical one."""


@job("bench.pickup")
def pickup(t: float) -> float:
    """Return seconds from the enqueue call to handler start; stored as the job's result."""
    return time.time() - t
