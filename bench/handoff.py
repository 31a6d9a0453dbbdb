"""What handing claimed jobs to the job threads costs, beside the standard library's pool.

A worker draining short jobs hands each one to a thread and takes its
outcome back: at thousands of jobs a second, that hand-off is a fair share
of the worker's CPU. This part runs no-op jobs through `JobThreads` (50
threads, handed over in batches of at most 50, as the worker's loop does)
and through `concurrent.futures.ThreadPoolExecutor` (50 threads, the
same batches, one `submit` each), in-process and with no database, taking
turns; it reports CPU per job (all threads) and jobs a second.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from app.jobs.execution import Claimed, Outcome
from app.jobs.threads import JobThreads

THREADS = 50
BATCH = 50

#: A run: hand over every job, return (CPU seconds, wall seconds).
Run = Callable[[list[Claimed]], tuple[float, float]]


def measure(n: int, rounds: int = 3) -> dict[str, float]:
    """`handoff.<pool>.cpu_us` (CPU per job) and `handoff.<pool>.rate` (jobs/s), medians."""
    jobs = [Claimed(uuid.uuid4(), "bench.noop", {}, "default", 1, 1) for _ in range(n)]
    runs: dict[str, Run] = {"pillars": _job_threads, "stdlib": _executor}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    rate: dict[str, list[float]] = {name: [] for name in runs}
    for turn in range(rounds):
        for name in list(runs)[:: 1 if turn % 2 else -1]:
            spent, took = runs[name](jobs)
            cpu[name].append(spent / n * 1e6)
            rate[name].append(n / took)
    figures: dict[str, float] = {}
    for name in runs:
        figures[f"handoff.{name}.cpu_us"] = statistics.median(cpu[name])
        figures[f"handoff.{name}.rate"] = statistics.median(rate[name])
    return figures


class _Finished:
    """Counts finished jobs and wakes the handing-over loop, as `Worker._done` does."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.wake = threading.Event()

    def done(self, _: object = None) -> None:
        with self.lock:
            self.count += 1
        self.wake.set()


def _hand_over(
    jobs: list[Claimed], finished: _Finished, submit: Callable[[list[Claimed]], None]
) -> tuple[float, float]:
    """The worker loop's pattern: hand over as many as are free (at most `BATCH`),
    wait to be woken, again; the CPU and wall seconds it all took."""
    cpu, wall = time.process_time(), time.perf_counter()
    given = 0
    while finished.count < len(jobs):
        free = min(BATCH, THREADS - (given - finished.count), len(jobs) - given)
        if free > 0:
            submit(jobs[given : given + free])
            given += free
        finished.wake.wait(0.01)
        finished.wake.clear()
    return time.process_time() - cpu, time.perf_counter() - wall


def _job_threads(jobs: list[Claimed]) -> tuple[float, float]:
    finished = _Finished()
    threads = JobThreads(THREADS, lambda job: Outcome(job, ok=True), finished.done)
    return _hand_over(jobs, finished, lambda batch: threads.submit_all([(j, None) for j in batch]))


def _executor(jobs: list[Claimed]) -> tuple[float, float]:
    finished = _Finished()
    with ThreadPoolExecutor(THREADS) as pool:

        def submit(batch: list[Claimed]) -> None:
            for job in batch:
                future: Future[Outcome] = pool.submit(Outcome, job, True)
                future.add_done_callback(finished.done)

        return _hand_over(jobs, finished, submit)


def render(figures: dict[str, float]) -> str:
    """CPU per job and jobs a second, JobThreads beside ThreadPoolExecutor."""
    if "handoff.pillars.cpu_us" not in figures:
        return ""
    ours, theirs = (figures[f"handoff.{name}.cpu_us"] for name in ("pillars", "stdlib"))
    rate, their_rate = (figures[f"handoff.{name}.rate"] for name in ("pillars", "stdlib"))
    return "\n".join(
        [
            f"{'hand-off, no-op jobs, 50 threads, batches of 50':<58} "
            f"{'JobThreads':>11} {'executor':>9} {'ratio':>7}",
            f"{'  CPU per job, µs (all threads)':<58} {ours:>11.1f} {theirs:>9.1f} "
            f"{ours / theirs:>7.2f}",
            f"{'  jobs/s':<58} {rate:>11,.0f} {their_rate:>9,.0f} {rate / their_rate:>7.2f}",
        ]
    )
