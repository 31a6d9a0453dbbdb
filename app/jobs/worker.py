"""The worker process: claim due jobs, run them on threads, record what happened.

The loop reads top to bottom in `run`: register, listen, then repeat one
*cycle* (save the outcomes of finished jobs and claim as many new jobs as
there are free threads, in one statement) until told to stop. Helpers on
their own threads: the listener (NOTIFY wake-ups, life lock), the heartbeat
(proof of life, rescue of other workers' lost jobs) and the job threads.

Delivery is at least once: a job whose worker dies, freezes or loses the
database runs again, and so can a job that finished in the instant before a
crash, before its outcome was saved. Handlers must be idempotent.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType

from sqlalchemy import Connection, Engine, exc

from app.config import Settings
from app.jobs import claims
from app.jobs.execution import Claimed, Outcome, execute
from app.jobs.heartbeat import Heartbeat, describe
from app.jobs.listener import Listener
from app.jobs.registry import registry
from app.jobs.threads import JobThreads

log = logging.getLogger(__name__)

#: How long a finished job's outcome may wait for others to share its commit.
LINGER = 0.002


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
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._unsaved: list[Outcome] = []
        self._conn: Connection | None = None
        self._signals = 0
        self._threads = JobThreads(self.concurrency, self._execute, self._done)

    def run(self) -> int:
        """Work until SIGTERM/SIGINT (or `stop()`), then drain and return the exit code."""
        self._register()
        Listener(
            self._conninfo(),
            lock_key=lambda: self.lock_key,
            queues=self.queues,
            on_notify=self._wake.set,
            stopping=self.stopping,
        ).start()
        Heartbeat(self.engine, self.settings, self.id, self._held, self.stopping).start()
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
        """Save finished outcomes and claim into free threads, in one statement."""
        while not self._finished.empty():
            self._unsaved.append(self._finished.get_nowait())
        free = self._threads.free if claim else 0
        if not self._unsaved and free <= 0:
            return
        try:
            saved, claimed = claims.cycle(
                self._connection(), self.id, self._unsaved, self.queues, free
            )
        except exc.SQLAlchemyError as error:
            log.warning("database unavailable (%s); retrying", describe(error))
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
            spec = registry.get(job.name) if job.name in registry else None
            self._threads.submit(job, spec.timeout if spec else None)

    def _wait(self) -> None:
        """Sleep until a job finishes, a NOTIFY arrives, a timeout or a poll is due."""
        timeout = self._threads.enforce_timeouts(self.settings.poll_interval)
        if self._finished.empty():
            self._wake.wait(timeout)
        self._wake.clear()
        if len(self._threads) and not self._finished.empty():
            # Others are about to finish too: save them all in one commit.
            time.sleep(LINGER)

    def _shut_down(self) -> int:
        """Let running jobs finish within the grace period, then release the rest."""
        deadline = time.monotonic() + self.settings.shutdown_grace
        log.info(
            "worker %s stopping: %d job(s) running, grace %.0fs",
            self.id,
            len(self._threads),
            self.settings.shutdown_grace,
        )
        while len(self._threads) and time.monotonic() < deadline:
            self._cycle(claim=False)
            self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        self._cycle(claim=False)
        self._drop_connection()
        leftover = self._threads.jobs()
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

    # -- what the threads call ------------------------------------------------

    def _execute(self, job: Claimed) -> Outcome:
        return execute(job, lambda fraction, message: self._progress(job, fraction, message))

    def _done(self, outcome: Outcome) -> None:
        self._finished.put(outcome)
        self._wake.set()

    def _progress(self, job: Claimed, fraction: float | None, message: str | None) -> None:
        with self.engine.begin() as conn:
            claims.set_progress(conn, self.id, job, fraction, message)

    def _held(self) -> list[Claimed]:
        """Jobs whose claim is ours: running, or finished with the outcome not yet saved."""
        return self._threads.jobs() + [o.job for o in list(self._unsaved)]

    # -- plumbing -------------------------------------------------------------

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
