"""What one enqueue costs, part by part, in microseconds per job.

Two design questions get their price here before anyone builds them: a
SAVEPOINT around the INSERT (so a refused row cannot abort the caller's
transaction) costs two more round trips, measured with raw psycopg on one
connection (BEGIN; SAVEPOINT; INSERT; RELEASE; COMMIT against BEGIN; INSERT;
COMMIT); and the queue's own payload check, measured in-process with no
database at all. The with/without pairs alternate three times, so a noisy
minute hurts both alike; each figure is the median of its three.
"""

from __future__ import annotations

import statistics
import time

from app.jobs import registry
from bench import pillars, raw

KEYS = ("cost.raw", "cost.savepoint", "cost.autocommit", "cost.check", "cost.pillars")


def payload_check(n: int) -> float:
    """Microseconds per `encode_payload` of a typical small payload: the check `enqueue` runs."""
    spec = registry.get("bench.noop")
    started = time.perf_counter()
    for i in range(n):
        spec.encode_payload({"n": i})
    return (time.perf_counter() - started) / n * 1e6


def measure(raw_dsn: str, target: pillars.Target, n: int) -> dict[str, float]:
    """Every part's microseconds per job (the median of three alternations)."""
    runs: dict[str, list[float]] = {key: [] for key in KEYS}
    for _ in range(3):
        runs["cost.raw"].append(1e6 / raw.enqueue_single(raw_dsn, n))
        runs["cost.savepoint"].append(1e6 / raw.enqueue_single(raw_dsn, n, savepoint=True))
        runs["cost.autocommit"].append(1e6 / raw.enqueue_autocommit(raw_dsn, n))
        runs["cost.check"].append(payload_check(n * 10))
        runs["cost.pillars"].append(1e6 / pillars.enqueue_single(target, n))
    return {key: statistics.median(values) for key, values in runs.items()}
