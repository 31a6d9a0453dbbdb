"""The job threads: run claimed jobs side by side, and enforce their timeouts.

A timeout first raises `JobTimeout` inside the job's thread; that takes effect
at the handler's next Python line. A handler blocked inside C code (a sleep, a
socket read without a timeout of its own) never reaches one, so after a
further `grace` the thread is *abandoned*: the attempt fails as timed out, a
fresh thread takes the slot, and whatever the stuck thread returns later is
dropped. Abandoned threads cannot be killed; the worker counts those still
alive and stops once too many linger (`Worker`).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.jobs.errors import JobTimeout
from app.jobs.execution import Claimed, Outcome, failure

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A job on one of the threads; `lock` guards interrupting and abandoning it."""

    job: Claimed
    timeout: float | None
    #: Set when a thread starts the job: a job claimed ahead waits for a thread first.
    deadline: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    interrupted: bool = False
    abandoned: bool = False
    #: Handed back before any thread started it (shutdown).
    withdrawn: bool = False


def _leave_if_forked(job: Claimed, pid: int) -> None:
    """End a child process (not `pid`) a handler forked that came back from the handler.

    Such a child is a copy of the worker with only this thread: carrying on, it
    would save a second outcome for the job and then wait forever for threads it
    does not have (an orphan `worker.py` that ignores SIGTERM). A child meant to
    work on its own execs or exits before it gets here (subprocess,
    multiprocessing).
    """
    if os.getpid() == pid:
        return
    os.write(
        2,
        f"job {job.job_id} {job.name}: the handler returned in a process it forked"
        f" (pid {os.getpid()}); that process exits\n".encode(),
    )
    os._exit(0)


def _checkpoint() -> None:
    """A Python-level call: lets a pending timeout interrupt fire here, not later."""


class _Slot:
    """An idle thread's lock, held until the thread is woken to look for a job."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()


class JobThreads:
    """`size` slots; `run` executes a job, `done` receives its outcome."""

    def __init__(
        self,
        size: int,
        run: Callable[[Claimed], Outcome],
        done: Callable[[Outcome], None],
        *,
        grace: float = 10.0,
    ) -> None:
        self.size = size
        self.grace = grace
        self._run, self._done = run, done
        #: The process the threads run in: a handler's forked child is not it.
        self._pid = os.getpid()
        # Jobs not started yet: highest priority first, then in claim order,
        # so a job claimed ahead never holds up a more urgent one claimed
        # after it. Idle threads are woken one at a time, each waking the
        # next if jobs are left when it takes one: a thread that has just
        # finished takes the next job without anyone being woken, and short
        # jobs cost no wake-up each (a shared queue woke a thread per job,
        # and each woken thread contended with the next hand-off).
        self._mutex = threading.Lock()
        self._waiting: list[tuple[int, int, Running]] = []
        self._idle: list[_Slot] = []
        #: A thread has been woken and has not taken a job yet.
        self._waking = False
        self._order = itertools.count()
        self._running: dict[tuple[uuid.UUID, int], Running] = {}
        self._abandoned: list[Running] = []
        self._names = itertools.count()
        for _ in range(size):
            self._spawn()

    @property
    def free(self) -> int:
        """Threads with nothing to do; negative while jobs claimed ahead wait for one."""
        return self.size - len(self._running)

    def jobs(self) -> list[Claimed]:
        """The jobs running now (a snapshot)."""
        return [r.job for r in list(self._running.values())]

    def __len__(self) -> int:
        return len(self._running)

    @property
    def lingering(self) -> int:
        """Abandoned threads still stuck in their handler."""
        self._abandoned = [r for r in self._abandoned if r.thread and r.thread.is_alive()]
        return len(self._abandoned)

    def submit(self, job: Claimed, timeout: float | None) -> None:
        """Run `job` on the next free thread (at once, if one is free)."""
        self.submit_all([(job, timeout)])

    def submit_all(self, jobs: Sequence[tuple[Claimed, float | None]]) -> None:
        """`submit` each (job, timeout), taking the lock once for them all."""
        held = [Running(job, timeout) for job, timeout in jobs]
        for running in held:
            self._running[running.job.key] = running
        with self._mutex:
            for running in held:
                entry = (-running.job.priority, next(self._order), running)
                heapq.heappush(self._waiting, entry)
            woken = self._wake_one()
        if woken is not None:
            woken.wake.release()

    def _wake_one(self) -> _Slot | None:
        """An idle thread to wake (with `_mutex` held), unless one is already on its way."""
        if self._waking or not self._idle:
            return None
        self._waking = True
        return self._idle.pop()  # the thread idle the shortest: the warmest

    def withdraw_waiting(self) -> list[Claimed]:
        """Take back the jobs claimed ahead, that no idle thread is about to start.

        As many unstarted jobs as there are idle threads stay (the most
        urgent, as the threads would take them); the rest are returned, to
        be handed back.
        """
        held = list(self._running.values())
        unstarted = sorted(
            (r for r in held if r.thread is None and not r.withdrawn),
            key=lambda r: -r.job.priority,
        )
        idle = self.size - (len(held) - len(unstarted))
        withdrawn = []
        for running in unstarted[max(0, idle) :]:
            with running.lock:
                if running.thread is None and not running.withdrawn:
                    running.withdrawn = True
                    self._running.pop(running.job.key, None)
                    withdrawn.append(running.job)
        return withdrawn

    def enforce_timeouts(self, longest_wait: float) -> float:
        """Interrupt overdue jobs, abandon those that ignored it (their failure goes to `done`).

        Returns how long until the next deadline, capped at `longest_wait`.
        """
        wait, now = longest_wait, time.monotonic()
        for running in list(self._running.values()):
            if running.deadline is None:
                continue
            if now >= running.deadline + self.grace:
                self._abandon(running)
                continue
            if now >= running.deadline:
                self._interrupt(running)
                wait = min(wait, running.deadline + self.grace - now)
            else:
                wait = min(wait, running.deadline - now)
        return max(0.0, wait)

    def _spawn(self) -> None:
        name = f"pillars-job-{next(self._names)}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _next(self, slot: _Slot) -> Running:
        """The most urgent waiting job, once there is one; wakes the next idle thread
        if more are waiting."""
        woken = False
        while True:
            with self._mutex:
                if woken:
                    self._waking = False
                if self._waiting:
                    running = heapq.heappop(self._waiting)[2]
                    other = self._wake_one() if self._waiting else None
                    break
                self._idle.append(slot)
            slot.wake.acquire()
            woken = True
        if other is not None:
            other.wake.release()
        return running

    def _serve(self) -> None:
        slot = _Slot()
        while True:
            running = self._next(slot)
            with running.lock:
                if running.withdrawn:
                    continue
                running.thread = threading.current_thread()
                if running.timeout is not None:
                    running.deadline = time.monotonic() + running.timeout
            outcome = self._run_one(running)
            with running.lock:
                if running.abandoned:
                    log.warning(
                        "job %s %s: abandoned handler returned after all; outcome dropped",
                        running.job.job_id,
                        running.job.name,
                    )
                    return  # a fresh thread has taken this one's slot
                # The outcome is handed over before the job leaves `_running`,
                # so the job is always listed somewhere as held (see Worker._held).
                self._done(outcome)
                self._running.pop(running.job.key, None)

    def _run_one(self, running: Running) -> Outcome:
        outcome: Outcome | None = None
        try:
            try:
                outcome = self._run(running.job)
            finally:
                _leave_if_forked(running.job, self._pid)
                with running.lock:
                    running.interrupted = True  # no interrupt may land after this point
            _checkpoint()
        except JobTimeout:  # the interrupt fired just after the handler returned
            pass
        except BaseException as error:  # noqa: BLE001 (a slot must never be lost)
            log.exception("job %s %s: the job thread failed", running.job.job_id, running.job.name)
            outcome = failure(running.job, f"the job thread failed: {type(error).__name__}")
        if outcome is None:
            outcome = failure(running.job, f"timed out after {running.timeout} s")
        return outcome

    def _interrupt(self, running: Running) -> None:
        with running.lock:
            if running.thread is None or running.interrupted:
                return
            running.interrupted = True
            ident = running.thread.ident
            if ident is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(JobTimeout)
            )
        log.warning(
            "job %s %s: timeout reached, interrupting", running.job.job_id, running.job.name
        )

    def _abandon(self, running: Running) -> None:
        """Fail a handler that ignored its interrupt and give its slot to a fresh thread."""
        message = (
            f"timed out after {running.timeout} s; the handler ignored the interrupt for "
            f"{self.grace} s more (blocked in C code, e.g. a sleep or a read without a "
            "timeout), so its thread was abandoned"
        )
        with running.lock:
            if running.abandoned or self._running.get(running.job.key) is not running:
                return
            running.abandoned = True
            self._done(failure(running.job, message))
            self._running.pop(running.job.key, None)
        self._abandoned.append(running)
        self._spawn()
        log.error("job %s %s: %s", running.job.job_id, running.job.name, message)
