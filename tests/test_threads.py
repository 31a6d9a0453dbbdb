"""The job threads: the most urgent held job starts first, and unstarted ones can be taken back."""

from __future__ import annotations

import threading
import uuid

from app.jobs.execution import Claimed, Outcome
from app.jobs.threads import JobThreads
from tests.processes import wait_for


def claimed(priority: int = 0, name: str = "test.noop") -> Claimed:
    return Claimed(uuid.uuid4(), name, {}, "default", 1, 3, priority=priority)


def test_held_jobs_start_by_priority_then_in_claim_order() -> None:
    gate, started = threading.Event(), []
    finished: list[Outcome] = []

    def run(job: Claimed) -> Outcome:
        started.append(job.name)
        if job.name == "blocker":
            gate.wait(5)
        return Outcome(job, ok=True)

    threads = JobThreads(1, run, finished.append)
    threads.submit(claimed(name="blocker"), None)
    wait_for(lambda: started == ["blocker"], what="the blocker to start")
    for name, priority in (("low", 0), ("later", 0), ("urgent", 5)):
        threads.submit(claimed(priority, name), None)
    assert threads.free == -3  # one running, three held
    gate.set()
    wait_for(lambda: len(finished) == 4, what="every job")
    assert started == ["blocker", "urgent", "low", "later"]


def test_jobs_no_thread_has_started_can_be_taken_back_and_never_run() -> None:
    gate, started = threading.Event(), []
    finished: list[Outcome] = []

    def run(job: Claimed) -> Outcome:
        started.append(job.name)
        gate.wait(5)
        return Outcome(job, ok=True)

    threads = JobThreads(1, run, finished.append)
    busy, waiting = claimed(name="busy"), claimed(name="waiting")
    threads.submit(busy, None)
    wait_for(lambda: started == ["busy"], what="the first job to start")
    threads.submit(waiting, None)
    assert threads.withdraw_waiting() == [waiting]
    assert threads.jobs() == [busy]
    gate.set()
    wait_for(lambda: len(finished) == 1, what="the running job")
    assert started == ["busy"]


def test_jobs_handed_to_idle_threads_all_run_at_once() -> None:
    """Idle threads are woken one after another, but every one of them is woken:
    ten jobs that can only finish together (a barrier of ten) finish."""
    barrier = threading.Barrier(10, timeout=10)
    finished: list[Outcome] = []

    def run(job: Claimed) -> Outcome:
        barrier.wait()
        return Outcome(job, ok=True)

    threads = JobThreads(10, run, finished.append)
    for _ in range(10):
        threads.submit(claimed(), None)
    wait_for(lambda: len(finished) == 10, what="ten jobs that need each other")
    assert not barrier.broken


def test_a_job_handed_over_while_threads_go_idle_is_never_stranded() -> None:
    """Thousands of hand-offs racing threads that are just going idle: each job runs."""
    finished = threading.Semaphore(0)
    threads = JobThreads(3, lambda job: Outcome(job, ok=True), lambda outcome: finished.release())
    for n in range(1, 5_001):
        threads.submit(claimed(), None)
        if n % 7 == 0:  # now and then, let every thread fall idle first
            for _ in range(7):
                assert finished.acquire(timeout=10), f"a job of the {n // 7}th group never ran"
    for _ in range(5_000 % 7):
        assert finished.acquire(timeout=10), "one of the last jobs never ran"
    wait_for(lambda: len(threads) == 0, what="the last job to leave")
