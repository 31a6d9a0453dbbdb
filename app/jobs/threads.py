"""The job threads: run claimed jobs side by side, interrupt those past their timeout.

A timeout raises `JobTimeout` inside the job's thread. It takes effect at the
handler's next Python line; a call blocked inside C code returns first.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from app.jobs.errors import JobTimeout
from app.jobs.execution import Claimed, Outcome, failure

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A job on one of the threads; `lock` guards interrupting it."""

    job: Claimed
    deadline: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread_id: int | None = None
    interrupted: bool = False


def _checkpoint() -> None:
    """A Python-level call: lets a pending timeout interrupt fire here, not later."""


class JobThreads:
    """`size` daemon threads; `run` executes a job, `done` receives its outcome."""

    def __init__(
        self, size: int, run: Callable[[Claimed], Outcome], done: Callable[[Outcome], None]
    ) -> None:
        self.size = size
        self._run, self._done = run, done
        self._tasks: queue.SimpleQueue[Running] = queue.SimpleQueue()
        self._running: dict[tuple[uuid.UUID, int], Running] = {}
        for n in range(size):
            threading.Thread(target=self._serve, name=f"pillars-job-{n}", daemon=True).start()

    @property
    def free(self) -> int:
        return self.size - len(self._running)

    def jobs(self) -> list[Claimed]:
        """The jobs running now (a snapshot)."""
        return [r.job for r in list(self._running.values())]

    def __len__(self) -> int:
        return len(self._running)

    def submit(self, job: Claimed, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        running = Running(job, deadline)
        self._running[job.key] = running
        self._tasks.put(running)

    def enforce_timeouts(self, longest_wait: float) -> float:
        """Interrupt overdue jobs; return how long until the next deadline (capped)."""
        wait, now = longest_wait, time.monotonic()
        for running in list(self._running.values()):
            if running.deadline is None:
                continue
            if running.deadline <= now:
                self._interrupt(running)
            else:
                wait = min(wait, running.deadline - now)
        return wait

    def _serve(self) -> None:
        while True:
            running = self._tasks.get()
            outcome = self._run_one(running)
            self._running.pop(running.job.key, None)
            self._done(outcome)

    def _run_one(self, running: Running) -> Outcome:
        outcome: Outcome | None = None
        try:
            try:
                with running.lock:
                    running.thread_id = threading.get_ident()
                outcome = self._run(running.job)
            finally:
                with running.lock:
                    running.thread_id = None
            _checkpoint()
        except JobTimeout:  # the interrupt fired just after the handler returned
            pass
        return outcome if outcome is not None else failure(running.job, "timed out")

    def _interrupt(self, running: Running) -> None:
        with running.lock:
            if running.thread_id is None or running.interrupted:
                return
            running.interrupted = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(running.thread_id), ctypes.py_object(JobTimeout)
            )
        log.warning(
            "job %s %s: timeout reached, interrupting", running.job.job_id, running.job.name
        )
