"""The worker process: claim due jobs, run them on threads, record what happened.

The loop reads top to bottom in `run`: register, listen, then repeat one
*cycle* (save the outcomes of finished jobs and claim as many new jobs as
there are free slots, in one transaction) until told to stop. Helpers on
their own threads: the listener (NOTIFY wake-ups, life lock), the heartbeat
(proof of life, rescue of other workers' lost jobs) and the job threads.

Delivery is at least once: a job whose worker dies, freezes or loses the
database runs again, and so can a job that finished in the instant before a
crash, before its outcome was saved. Handlers must be idempotent.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from sqlalchemy import Connection, Engine, exc

from app.config import Settings
from app.jobs import claims
from app.jobs.errors import JobTimeout
from app.jobs.execution import Claimed, Outcome, execute, failure
from app.jobs.listener import Listener
from app.jobs.registry import registry

log = logging.getLogger(__name__)

#: How long a finished job's outcome may wait for others to share its commit.
LINGER = 0.002


@dataclass
class Running:
    """A job on one of our threads; `lock` guards interrupting it at its timeout."""

    job: Claimed
    deadline: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread_id: int | None = None
    interrupted: bool = False


def _describe(error: exc.SQLAlchemyError) -> str:
    """Name the driver's error (e.g. OperationalError) rather than SQLAlchemy's wrapper."""
    cause = error.orig if isinstance(error, exc.DBAPIError) else error
    return type(cause).__name__


def _checkpoint() -> None:
    """A Python-level call: lets a pending timeout interrupt fire here, not later."""


class Worker:
    """One worker process: `concurrency` jobs at once from `queues` (None: every queue)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or settings.worker_concurrency
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lock_key = 0
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._tasks: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._running: dict[tuple[object, int], Running] = {}
        self._unsaved: list[Outcome] = []
        self._signals = 0
        self._conn: Connection | None = None

    # -- the loop -------------------------------------------------------------

    def run(self) -> int:
        """Work until SIGTERM/SIGINT (or `stop()`), then drain and return the exit code."""
        self._register()
        listener = Listener(
            self._conninfo(),
            lock_key=lambda: self.lock_key,
            queues=self.queues,
            on_notify=self._wake.set,
            stopping=self.stopping,
        )
        listener.start()
        for n in range(self.concurrency):
            threading.Thread(target=self._serve, name=f"pillars-job-{n}", daemon=True).start()
        threading.Thread(target=self._beat, name="pillars-heartbeat", daemon=True).start()
        log.info(
            "worker %s started: queues=%s concurrency=%d jobs=%s",
            self.id,
            ",".join(self.queues or ["*"]),
            self.concurrency,
            ",".join(registry.names()),
        )
        while not self.stopping.is_set():
            self._cycle(claim=True)
            self._wait()
        return self._shut_down()

    def stop(self) -> None:
        """Stop claiming; `run` lets running jobs finish within the grace period."""
        self.stopping.set()
        self._wake.set()

    def _cycle(self, *, claim: bool) -> None:
        """Save finished outcomes and claim into free slots, in one transaction."""
        while True:
            try:
                self._unsaved.append(self._finished.get_nowait())
            except queue.Empty:
                break
        free = self.concurrency - len(self._running) if claim else 0
        if not self._unsaved and free <= 0:
            return
        try:
            saved, claimed = claims.cycle(
                self._connection(), self.id, self._unsaved, self.queues, free
            )
        except exc.SQLAlchemyError as error:
            log.warning("database unavailable (%s); retrying", _describe(error))
            self._drop_connection()
            self.stopping.wait(1.0)
            return
        for lost in saved.lost:
            log.warning(
                "job %s %s: claim was lost before its outcome was saved (rescued "
                "elsewhere); outcome dropped",
                lost.job.job_id,
                lost.job.name,
            )
        self._unsaved = []
        for job in claimed:
            self._start(job)

    def _connection(self) -> Connection:
        """The loop's own connection: no pool checkout (and ping) per cycle.

        Autocommit: each cycle is a single statement, so it needs no BEGIN and
        COMMIT round trips of its own.
        """
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if not self.settings.worker_synchronous_commit:
                conn.exec_driver_sql("SET synchronous_commit = off")
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except exc.SQLAlchemyError:
                pass
        self._conn = None

    def _wait(self) -> None:
        """Sleep until a job finishes, a NOTIFY arrives, a timeout is due, or a poll is due."""
        timeout = self.settings.poll_interval
        now = time.monotonic()
        for running in list(self._running.values()):
            if running.deadline is not None:
                if running.deadline <= now:
                    self._interrupt(running)
                else:
                    timeout = min(timeout, running.deadline - now)
        if self._finished.empty():
            self._wake.wait(timeout)
        self._wake.clear()
        if self._running and not self._finished.empty():
            # Others are about to finish too: save them all in one commit.
            time.sleep(LINGER)

    def _shut_down(self) -> int:
        """Let running jobs finish within the grace period, then release the rest."""
        deadline = time.monotonic() + self.settings.shutdown_grace
        log.info(
            "worker %s stopping: %d job(s) running, grace %.0fs",
            self.id,
            len(self._running),
            self.settings.shutdown_grace,
        )
        while self._running and time.monotonic() < deadline:
            self._cycle(claim=False)
            self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        self._cycle(claim=False)
        self._drop_connection()
        leftover = [r.job for r in list(self._running.values())]
        try:
            with self.engine.begin() as conn:
                released = claims.release(conn, self.id, leftover) if leftover else []
                claims.unregister(conn, self.id)
        except exc.SQLAlchemyError:
            log.exception("could not release %d job(s); they will be rescued", len(leftover))
            return 1
        for job_id in released:
            log.warning("job %s released back to the queue at shutdown", job_id)
        log.info("worker %s stopped", self.id)
        return 0

    # -- jobs on threads ------------------------------------------------------

    def _start(self, job: Claimed) -> None:
        spec_timeout = registry.get(job.name).timeout if job.name in registry else None
        deadline = None if spec_timeout is None else time.monotonic() + spec_timeout
        running = Running(job, deadline)
        self._running[job.key] = running
        self._tasks.put(running)

    def _serve(self) -> None:
        while (running := self._tasks.get()) is not None:
            outcome = self._run_one(running)
            self._running.pop(running.job.key, None)
            self._finished.put(outcome)
            self._wake.set()

    def _run_one(self, running: Running) -> Outcome:
        job = running.job
        outcome: Outcome | None = None
        try:
            try:
                with running.lock:
                    running.thread_id = threading.get_ident()
                outcome = execute(job, lambda f, m: self._progress(job, f, m))
            finally:
                with running.lock:
                    running.thread_id = None
            _checkpoint()
        except JobTimeout:  # the interrupt fired just after the handler returned
            pass
        if outcome is None:
            outcome = failure(job, "timed out")
        return outcome

    def _interrupt(self, running: Running) -> None:
        """Raise `JobTimeout` inside the job's thread (takes effect at its next Python line)."""
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

    def _progress(self, job: Claimed, fraction: float | None, message: str | None) -> None:
        with self.engine.begin() as conn:
            claims.set_progress(conn, self.id, job, fraction, message)

    # -- proof of life --------------------------------------------------------

    def _register(self) -> None:
        with self.engine.begin() as conn:
            self.lock_key = claims.register(
                conn,
                self.id,
                kind="worker",
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                concurrency=self.concurrency,
            )

    def _beat(self) -> None:
        """Every heartbeat interval: refresh our heartbeats, then rescue others' lost jobs."""
        while not self.stopping.wait(self.settings.heartbeat_interval):
            held = [r.job for r in list(self._running.values())]
            held += [o.job for o in list(self._unsaved)]
            try:
                with self.engine.begin() as conn:
                    alive = claims.heartbeat(conn, self.id, held)
                still_held = {r.job.key for r in list(self._running.values())}
                still_held |= {o.job.key for o in list(self._unsaved)}
                for job in held:
                    # Jobs saved meanwhile are not running any more, but not lost.
                    if job.job_id not in alive and job.key in still_held:
                        log.warning(
                            "job %s %s: claim lost (rescued by another worker)",
                            job.job_id,
                            job.name,
                        )
                with self.engine.begin() as conn:
                    grace = 2 * self.settings.heartbeat_interval
                    rescued = claims.rescue(conn, grace=grace, stale=self.settings.stale_timeout)
                for r in rescued:
                    log.warning(
                        "job %s %s rescued (now %s): %s", r.job_id, r.name, r.state, r.reason
                    )
            except exc.SQLAlchemyError as error:
                log.warning("heartbeat failed (%s)", _describe(error))

    # -- plumbing -------------------------------------------------------------

    def _conninfo(self) -> str:
        url = self.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""

        def handle(signum: int, frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                log.warning("second signal: exiting now; running jobs will be rescued")
                os._exit(1)
            log.info("signal %d: finishing running jobs, claiming no more", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
