"""The worker process: claim due jobs, run them on threads, record what happened.

The loop reads top to bottom in `run`: take up a presence (register, life
lock, LISTEN), then repeat one *cycle* (save the outcomes of finished jobs
and claim as many new jobs as there are free threads, in one statement)
until told to stop, drain, and only then give the presence up. Helpers on
their own threads: the presence (`app.jobs.processes`), the heartbeat (held
jobs, rescue of other workers' lost jobs), the express claim (a job enqueued
while a cycle is under way, `app.jobs.express`) and the job threads.

Delivery is at least once: a job whose worker dies, freezes or loses the
database runs again, and so can a job that finished in the instant before a
crash, before its outcome was saved. Handlers must be idempotent.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, exc

from app import logs, shutdown
from app.config import Settings
from app.db import describe, is_connection_fault, make_engine
from app.jobs import claims, observed
from app.jobs.execution import Claimed, Outcome, failure
from app.jobs.express import Express
from app.jobs.heartbeat import Heartbeat
from app.jobs.pooling import link
from app.jobs.processes import Identity, Presence, new_process_id
from app.jobs.registry import registry
from app.jobs.threads import JobThreads

log = logging.getLogger(__name__)

#: How long a finished job's outcome may wait for others to share its commit.
LINGER = 0.002
#: Claim ahead only jobs expected to start within this long: short jobs then
#: share each commit with the next batches, long ones are left to other workers.
AHEAD = 0.005
#: ... and at most this many times the worker's concurrency.
AHEAD_BATCHES = 8
#: Seconds flow control (promotion, limited queues) rests after a fault.
FLOW_REST = 5.0
#: Exit code of a worker that stopped because abandoned job threads piled up.
EXIT_TIRED = 3
#: Exit code of a worker whose database connection turned out not to be a session of
#: its own (a transaction pooler the settings do not mention).
EXIT_MISCONFIGURED = 2


def settle_heap() -> None:
    """Collect once, then keep what startup built out of every later collection.

    The modules, handlers and pools loaded by now live as long as the process,
    yet Python's oldest-generation collection walks them all again: 94,000
    objects, a 30 ms stop of every thread, every few seconds of a drain (the
    jobs in flight, and the pickup of new ones, wait it out). Frozen, they
    are left alone and later collections walk only what came since. (One of
    them that later ends up in a garbage cycle, say a connection dropped
    after a database restart, stays in memory: a bounded, one-off cost.)

    Done before the worker registers and LISTENs: the collection itself stops
    every thread for tens of milliseconds, and a NOTIFY that came meanwhile
    waited it out (the first jobs enqueued after a worker announced itself
    started 60-80 ms late).
    """
    gc.collect()
    gc.freeze()


class Worker:
    """One worker process: `concurrency` jobs at once from `queues` (None: every queue)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        handler_engine: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        #: What handlers get in their `JobContext`: a pool of their own
        #: (WORKER_DB_POOL), apart from the worker's connections.
        self.handler_engine = handler_engine or make_engine(
            settings, pool_size=settings.handler_pool
        )
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or settings.worker_concurrency
        self.id = new_process_id()
        # On every line this process logs (one worker per process).
        logs.set_process(worker_id=self.id)
        self.stopping = threading.Event()
        #: Set once every held job is saved or released: the helpers may go.
        self.finished = threading.Event()
        self._wake = threading.Event()
        #: Set by a NOTIFY: a job was enqueued since the last claim.
        self._notified = threading.Event()
        #: Finished attempts, oldest first, until a cycle has saved them.
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        #: The loop is inside a cycle (waiting on the database, mostly).
        self._cycling = False
        #: Jobs being claimed now (by the loop's cycle or the express claim) and not
        #: yet handed to the threads: room already spoken for. Under `_claims`.
        self._claiming = 0
        self._claims = threading.Lock()
        self._signals = 0
        self._exit_code = 0
        #: Until when (monotonic) flow control rests after a fault (`_flow`).
        self._flow_rest_until = 0.0
        #: Recent run time of a job, seconds; None until one has run.
        self._mean_run: float | None = None
        self._threads = JobThreads(
            self.concurrency, self._execute, self._done, grace=settings.worker_timeout_grace
        )
        self.presence = Presence(
            link(engine, settings),
            Identity(self.id, "worker", self.queues, self.concurrency, registry.names()),
            interval=settings.heartbeat_interval,
            on_notify=self._notify,
            queues=self.queues,
            watch=True,
            on_problem=self._misconfigured,
        )
        self._express = Express(
            engine, settings, self.id, self.queues, self._express_room, self._express_settled
        )

    def run(self) -> int:
        """Work until SIGTERM/SIGINT (or `stop()`), then drain and return the exit code."""
        settle_heap()
        self.presence.start()
        # Give claims an owner peers can see; a database that is away is
        # waited out by the loop itself, so don't wait for long.
        if not self.presence.alive.wait(5.0) and not self.stopping.is_set():
            log.warning("worker %s: presence not up yet; working while it connects", self.id)
        Heartbeat(
            self.engine, self.settings, self.id, self._held, self.presence, self.finished
        ).start()
        self._express.start()
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

    def _misconfigured(self, problem: str) -> None:
        """The presence found no session of its own: stop before claiming more (exit 2)."""
        self._exit_code = EXIT_MISCONFIGURED
        self.stop()

    def _cycle(self, *, claim: bool) -> bool:
        """Save finished outcomes and claim into free threads, in one statement;
        False if the database could not be reached or refused.

        Nothing that happens here may end the process: a database fault is
        waited out, anything else is logged with its traceback and retried.
        Outcomes stay listed until a cycle has saved them.
        """
        with self._lock:
            outcomes = list(self._outcomes)
        notified = self._notified.is_set()
        with self._claims:
            free = max(self._claimable(), 0) if claim and not self._tired() else 0
            self._claiming += free
        if not outcomes and not free:
            return True
        self._cycling = True
        try:
            saved = self._save_and_claim(outcomes, free, notified=notified)
        finally:
            self._cycling = False
        if not saved:
            self.stopping.wait(1.0)
        return saved

    def _save_and_claim(self, outcomes: list[Outcome], free: int, *, notified: bool) -> bool:
        """The cycle's statements: save `outcomes`, claim and start `free` jobs at most
        (the room `_cycle` spoke for, given back here). False if they failed."""
        try:
            conn = self._connection()
            if notified and free > 0 and (outcomes or len(self._threads)):
                # A job was enqueued while others ran: start it first. Saving
                # a busy worker's outcomes and claiming its next batch takes
                # milliseconds; claiming one job alone, a fraction of one.
                first = claims.claim(conn, self.id, self.queues, 1)
                self._start(first)
                self._settle(len(first))
                free -= len(first)
                if not outcomes and free <= 0:
                    return True
            done = claims.cycle(conn, self.id, outcomes, self.queues, free)
            claimed = done.claimed + self._flow(done, free - len(done.claimed))
        except exc.SQLAlchemyError as error:
            self._drop_connection()
            if is_connection_fault(error):
                log.warning("database unavailable (%s); retrying", describe(error))
            elif outcomes:
                log.error(
                    "worker %s: cycle refused (%s); saving outcomes apart", self.id, describe(error)
                )
                self._save_apart(outcomes)
            else:
                log.error("worker %s: claim refused (%s); retrying", self.id, describe(error))
            return False
        except Exception:
            log.exception("worker %s: cycle failed; retrying", self.id)
            self._drop_connection()
            return False
        else:
            self._start(claimed)  # before giving the room back: see `_express_room`
        finally:
            self._settle(free)
        self._dropped(done.saved.lost)
        with self._lock:
            del self._outcomes[: len(outcomes)]
        return True

    def _dropped(self, lost: list[Outcome]) -> None:
        """Outcomes whose claim was lost: say so, and let go of those jobs' attempts."""
        if not lost:
            return
        self._let_go([outcome.job for outcome in lost])
        for outcome in lost:
            log.warning(
                "job %s %s: claim was lost before its outcome was saved (cancelled while "
                "it ran, rescued as this worker's, or undone by a database crash with "
                "WORKER_SYNCHRONOUS_COMMIT=off); outcome dropped",
                outcome.job.job_id,
                outcome.job.name,
            )

    def _let_go(self, jobs: list[Claimed]) -> None:
        """Free jobs cancelled while they ran here for a retry (`claims.let_go`); a fault
        only delays that until this worker is gone."""
        try:
            with self.engine.begin() as conn:
                claims.let_go(conn, self.id, jobs)
        except exc.SQLAlchemyError as error:
            log.warning(
                "worker %s: could not let go of %d job(s) (%s)", self.id, len(jobs), describe(error)
            )

    def _start(self, claimed: list[Claimed]) -> None:
        if claimed:
            self._threads.submit_all([(job, registry.timeout(job.name)) for job in claimed])

    def _notify(self) -> None:
        self._notified.set()
        self._wake.set()
        if self._cycling:
            self._express.poke()

    def _settle(self, count: int) -> None:
        """`count` jobs spoken for are claimed and started, or will not be claimed."""
        with self._claims:
            self._claiming -= count

    def _express_room(self) -> bool:
        """Whether the express thread may claim for the NOTIFY at hand, and if so
        speak for the room (`_express_settled` gives it back) and leave it the NOTIFY.

        By the rule of `_claimable`, less what the loop's statement is claiming
        right now: a free thread, or one soon among short jobs claimed ahead.
        """
        if self.stopping.is_set() or not self._notified.is_set():
            return False
        with self._claims:
            ahead = self._ahead()
            free = self._threads.free + ahead - self._claiming
            if free > 0 or (ahead > 0 and free + self.concurrency > 0):
                self._notified.clear()
                self._claiming += 1
                return True
        return False

    def _express_settled(self, claimed: list[Claimed] | None) -> None:
        """The express claim is over: start what it got; if it failed (None), the
        NOTIFY is the loop's again."""
        if claimed is None:
            self._notified.set()
            self._wake.set()
        else:
            self._start(claimed)
        self._settle(1)

    def _claimable(self) -> int:
        """How many jobs to claim now: the free threads, and those claimed ahead.

        After a NOTIFY, at least one even while the jobs claimed ahead are
        enough: the new job may come before them (a higher priority) and
        would otherwise wait until they ran low. Only while jobs are short
        enough to be claimed ahead at all: a job claimed by a worker busy
        with long ones would wait there while another worker stands idle.
        Bounded: never more than a thread's worth beyond the usual. Less the
        jobs being claimed right now (the express claim's); `_claims` held.
        """
        ahead = self._ahead()
        free = self._threads.free + ahead - self._claiming
        if self._notified.is_set():
            self._notified.clear()
            if free <= 0 and ahead > 0 and free + self.concurrency > 0:
                return 1
        return free

    def _ahead(self) -> int:
        """How many jobs to claim beyond the free threads: as many as the threads would
        start within `AHEAD` seconds at the recent run time (none while it is unknown)."""
        mean = self._mean_run
        if mean is None:
            return 0
        return min(
            AHEAD_BATCHES * self.concurrency, int(self.concurrency * AHEAD / max(mean, 1e-6))
        )

    def _flow(self, done: claims.Cycle, free: int) -> list[Claimed]:
        """Promote fresh waiting jobs, and claim from limited queues into the free slots.

        Jobs let in by the promoter are claimed by the next cycle, at once.
        Never raises: the cycle's own claims are committed by now, and a fault
        here (a row the promoter cannot handle, a queue limit the database
        refuses) must not keep them from their threads. After a fault, flow
        control rests for `FLOW_REST` seconds rather than failing every cycle.
        """
        claimed: list[Claimed] = []
        if time.monotonic() < self._flow_rest_until:
            return claimed
        try:
            if done.promote and claims.promote(self.engine):
                self._wake.set()
            for queue in done.limited:
                claimed += claims.claim_limited(self.engine, self.id, queue, free - len(claimed))
        except exc.SQLAlchemyError as error:
            if is_connection_fault(error):
                log.warning("database unavailable (%s); flow control waits", describe(error))
            else:
                log.error(
                    "worker %s: flow control refused (%s); trying again in %.0f s",
                    self.id,
                    describe(error),
                    FLOW_REST,
                )
            self._flow_rest_until = time.monotonic() + FLOW_REST
        except Exception:
            log.exception(
                "worker %s: flow control failed; trying again in %.0f s", self.id, FLOW_REST
            )
            self._flow_rest_until = time.monotonic() + FLOW_REST
        return claimed

    def _save_apart(self, outcomes: list[Outcome]) -> None:
        """Save outcomes one by one, so one the database refuses cannot hold up the rest.

        An outcome refused on its own is replaced by a bare failure; if even
        that is refused it is dropped, and the job goes back to the queue
        as a stray (`Heartbeat`).
        """
        lost: list[Outcome] = []
        for outcome in outcomes:
            if not self._save_alone(outcome, lost):
                break  # the database is away: the next cycle tries the rest again
        self._dropped(lost)

    def _save_alone(self, outcome: Outcome, lost: list[Outcome]) -> bool:
        """Save `outcome`, or a bare failure in its place, and forget it; add it to
        `lost` if its claim was lost. False, keeping it, if the database is away."""
        bare = failure(outcome.job, "the outcome of this attempt could not be saved")
        for attempt in (outcome, bare):
            try:
                with self.engine.begin() as conn:
                    lost.extend(claims.save_outcomes(conn, self.id, [attempt]).lost)
                break
            except exc.SQLAlchemyError as error:
                if is_connection_fault(error):
                    return False
                log.error(
                    "job %s %s: outcome refused by the database: %s",
                    outcome.job.job_id,
                    outcome.job.name,
                    describe(error),
                )
        with self._lock:
            self._outcomes.remove(outcome)
        return True

    def _wait(self) -> None:
        """Sleep until a job finishes, a NOTIFY arrives, a timeout or a poll is due."""
        timeout = self._threads.enforce_timeouts(self.settings.poll_interval)
        if not self._outcomes:
            self._wake.wait(timeout)
        self._wake.clear()
        if len(self._threads) and self._outcomes:
            # Others are about to finish too: save them all in one commit;
            # unless a job was just enqueued, which may not wait for them.
            self._notified.wait(LINGER)

    def _tired(self) -> bool:
        """Too many abandoned threads linger: stop claiming and exit to be restarted."""
        lingering = self._threads.lingering
        if lingering < self.settings.worker_max_abandoned:
            return False
        if not self.stopping.is_set():
            log.error(
                "worker %s: %d job thread(s) stuck past their timeout; stopping so a fresh "
                "process can take over (exit code %d)",
                self.id,
                lingering,
                EXIT_TIRED,
            )
            self._exit_code = EXIT_TIRED
            self.stop()
        return True

    def _shut_down(self) -> int:
        """Let running jobs finish within the grace period, release the rest, then go.

        The presence (and with it the life lock) is given up last: until then
        peers know the jobs still draining here are in good hands.
        """
        deadline = time.monotonic() + self.settings.shutdown_grace
        self._express.close()
        unstarted = self._hand_back(self._threads.withdraw_waiting())  # claimed ahead
        log.info(
            "worker %s stopping: %d job(s) running, grace %.0fs",
            self.id,
            len(self._threads),
            self.settings.shutdown_grace,
        )
        # Until every outcome is saved, not only until the threads are done: a
        # database away now may be back within the grace, and an outcome not
        # saved means the job runs again once rescued.
        while (len(self._threads) or self._outcomes) and time.monotonic() < deadline:
            pause = 0.2 if self._cycle(claim=False) else 1.0
            self._threads.enforce_timeouts(0.2)
            self._wake.wait(min(pause, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        self._cycle(claim=False)
        self._drop_connection()
        if self._outcomes:
            log.error(
                "worker %s: %d outcome(s) not saved within the grace period; "
                "those jobs will be rescued and run again",
                self.id,
                len(self._outcomes),
            )
        leftover = unstarted + self._threads.withdraw_waiting() + self._threads.jobs()
        code = self._exit_code
        try:
            with self.engine.begin() as conn:
                released = claims.release(conn, self.id, leftover) if leftover else []
                claims.unregister(conn, self.id)
        except exc.SQLAlchemyError as error:
            log.error(
                "could not release %d job(s) (%s); they will be rescued",
                len(leftover),
                describe(error),
            )
            released, code = [], 1
        self.finished.set()
        self.presence.close()
        for job_id in released:
            log.warning("job %s released back to the queue at shutdown", job_id)
        log.info("worker %s stopped%s (exit code %d)", self.id, "" if code else " cleanly", code)
        return code

    def _hand_back(self, jobs: list[Claimed]) -> list[Claimed]:
        """Release jobs this worker will not start, for peers to take at once; those it
        could not release, to try again with the rest at the end."""
        if not jobs:
            return []
        try:
            with self.engine.begin() as conn:
                claims.release(conn, self.id, jobs)
        except exc.SQLAlchemyError as error:
            log.warning("could not hand back %d job(s) yet (%s)", len(jobs), describe(error))
            return jobs
        return []

    # -- what the threads call ------------------------------------------------

    def _execute(self, job: Claimed) -> Outcome:
        outcome, took = observed.attempt(
            job,
            self.handler_engine,
            self.settings,
            lambda fraction, message: self._progress(job, fraction, message),
        )
        # A moving mean of recent run times (a race between threads only blurs it).
        self._mean_run = took if self._mean_run is None else 0.9 * self._mean_run + 0.1 * took
        return outcome

    def _done(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)
        self._wake.set()

    def _progress(self, job: Claimed, fraction: float | None, message: str | None) -> None:
        with self.engine.begin() as conn:
            claims.set_progress(conn, self.id, job, fraction, message)

    def _held(self) -> list[Claimed]:
        """Jobs whose claim is ours: running, or finished with the outcome not yet saved.

        Read in this order, against the job threads' order of handing an
        outcome over before letting go of the job, so no job is ever missed.
        """
        running = self._threads.jobs()
        with self._lock:
            return running + [o.job for o in self._outcomes]

    # -- plumbing -------------------------------------------------------------

    def _connection(self) -> Connection:
        """The loop's own connection (`claims.loop_connection`): no pool checkout (and
        ping) per cycle."""
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = claims.loop_connection(self.engine, self.settings)
        return self._conn

    def _drop_connection(self) -> None:
        """Close the loop's connection for good (`claims.close_loop_connection`)."""
        claims.close_loop_connection(self._conn)
        self._conn = None

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: graceful stop. Second: exit at once."""

        def handle(signum: int) -> None:
            self._signals += 1
            if self._signals > 1:
                log.warning("second signal: exiting now; running jobs will be rescued")
                logs.flush()
                os._exit(1)
            log.info("signal %d: finishing running jobs, claiming no more", signum)
            self.stop()

        shutdown.deliver(handle)
