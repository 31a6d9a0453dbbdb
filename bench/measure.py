"""What a measurement yields, computed the same way for every system.

Pure functions over timestamps, no clock of their own: a drain is its start,
the moments its first and last tenth of jobs were done, and its end; a
pickup measurement is a list of latencies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Drain:
    """A backlog of `jobs` worked off between `start` and `end` (seconds, one clock).

    `first_tenth` is when the job that completed the first 10 % was done,
    `last_tenth` when the last 10 % began (the 90 % mark).
    """

    jobs: int
    start: float
    first_tenth: float
    last_tenth: float
    end: float

    @property
    def rate(self) -> float:
        return self.jobs / max(self.end - self.start, 1e-9)

    @property
    def first_rate(self) -> float:
        return 0.1 * self.jobs / max(self.first_tenth - self.start, 1e-9)

    @property
    def last_rate(self) -> float:
        return 0.1 * self.jobs / max(self.end - self.last_tenth, 1e-9)

    @property
    def flatness(self) -> float:
        """Drain rate of the last tenth over the first: 1.0 means churn costs nothing."""
        return self.last_rate / self.first_rate


def drain_from_batches(start: float, batches: Sequence[tuple[float, int]]) -> Drain:
    """A `Drain` from (done at, jobs) pairs reported by workers as they commit."""
    ordered = sorted(batches)
    total = sum(count for _, count in ordered)
    if total == 0:
        raise ValueError("no job was done")
    return Drain(
        total,
        start,
        _moment(ordered, 0.1 * total),
        _moment(ordered, 0.9 * total),
        ordered[-1][0],
    )


def _moment(ordered: Sequence[tuple[float, int]], jobs: float) -> float:
    """When at least `jobs` jobs were done."""
    done = 0
    for at, count in ordered:
        done += count
        if done >= jobs:
            return at
    return ordered[-1][0]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (`pct` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * pct / 100))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Pickup:
    """Milliseconds from an enqueue's commit call to the job reaching its handler."""

    p50: float
    p99: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Pickup:
        if not seconds:
            raise ValueError("no job was picked up")
        return cls(percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000)
