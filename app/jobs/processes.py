"""Process liveness: how worker and cron processes prove they are alive, in one place.

A live process has a row in `workers` and holds its *life lock*, a session
advisory lock `(LOCK_NAMESPACE, lock_key)`, on one dedicated connection: its
*presence*. The database releases the lock the moment that session ends, so
peers learn of a death without waiting for a heartbeat to go stale. The same
connection refreshes the row's heartbeat, which tells a frozen process
(SIGSTOP, a hung machine) from a live one, and for workers it LISTENs for new
jobs.

The presence lives until its process has saved or released its last job:
closing it any earlier would let peers rescue jobs that are still running.
Registering and taking the lock happen in one statement, so whenever a row is
visible its lock is already held; every (re)connection registers under a
fresh lock key, so a lingering session of the same process can never block
it. One presence in the fleet also holds the *watcher* lock: its process
looks for dead peers every fraction of a second (see `app.jobs.heartbeat`).

Behind a transaction pooler (PgBouncer's pool_mode = transaction) a client
has no session between transactions: a lock or a LISTEN stays behind on a
server session that other clients then use. There a process keeps its
presence through DATABASE_DIRECT_URL when given, as above; without it, it
registers with a *lease* instead (`Link`): no lock, no LISTEN, and peers
count it dead once its heartbeat is older than the lease. A presence that
finds its session shared (its lock held by another client's session, or
missing from its own) says so and reports the problem to its process,
which stops: running on would lose wake-ups and deaths silently.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from app.db import describe
from app.jobs import sql
from app.jobs.pooling import Link, holds_life_lock, pooler_problem, shared_session

log = logging.getLogger(__name__)

#: The wake-up channel; the jobs table's insert trigger notifies it with the queue name.
NOTIFY_CHANNEL = "pillars_jobs"


def new_process_id() -> str:
    """`host:pid:nonce`: readable in `ps` and logs, unique across hosts and pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


#: How long a presence must have been up before its process judges peers dead
#: or frozen: peers hit by the same outage need the time to reconnect (twice
#: the longest presence backoff).
SETTLED = 2.0


class Backoff:
    """Reconnect delays: 0.2 s doubling to `cap`, back to the start after a success."""

    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, delay * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


@dataclass(frozen=True)
class Identity:
    """What a process says about itself in its `workers` row."""

    process_id: str
    kind: str
    queues: Sequence[str] | None = None
    concurrency: int = 1
    job_names: Sequence[str] = ()

    def params(self, lock_namespace: int, lease: float | None = None) -> dict[str, object]:
        return {
            "lease": lease,
            "worker_id": self.process_id,
            "kind": self.kind,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": None if self.queues is None else list(self.queues),
            "concurrency": self.concurrency,
            "job_names": list(self.job_names),
            "namespace": lock_namespace,
        }


def register(conn: psycopg.Connection[Any], identity: Identity, lease: float | None = None) -> int:
    """Register `identity` on `conn` and take its life lock there; return the lock key.

    `conn` must be in autocommit: the lock is the session's, held until it ends.
    With a `lease`, no lock is taken (see `Link`).
    """
    params = identity.params(sql.LOCK_NAMESPACE, lease)
    row = conn.execute(sql.PRESENCE_REGISTER, params).fetchone()
    assert row is not None  # an INSERT ... ON CONFLICT DO UPDATE always returns its row
    return int(row[0])


class Presence(threading.Thread):
    """Keeps a process registered, locked and heartbeating until `close()`.

    With `on_notify`, it also LISTENs and calls it for every notification
    about one of `queues` (None: all), and once after each (re)connection,
    since jobs may have arrived while nobody listened. The thread never
    gives up: a lost connection is reopened with backoff while the process
    keeps working (workers poll meanwhile).
    """

    def __init__(
        self,
        link: Link,
        identity: Identity,
        *,
        interval: float,
        on_notify: Callable[[], None] | None = None,
        queues: Collection[str] | None = None,
        watch: bool = False,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name=f"pillars-{identity.kind}-presence", daemon=True)
        self.identity = identity
        self._conninfo = link.conninfo
        self._lease = link.lease
        self._interval = interval
        # Behind a transaction pooler a LISTEN hears nothing reliably: the
        # process polls, after one wake-up per registration.
        self._listen = on_notify is not None and link.lease is None
        self._on_notify = on_notify
        self._queues = None if queues is None else frozenset(queues)
        # The watcher lock is a session lock too.
        self._watch = watch and link.lease is None
        self._on_problem = on_problem
        #: Set when the presence found its session shared: the process must stop.
        self.problem: str | None = None
        self._closing = threading.Event()
        self._closed = threading.Event()
        # A presence away for long looks dead to peers: try again often.
        self._backoff = Backoff(first=0.2, cap=1.0)
        #: When (monotonic) the current registration began; None while away.
        self.up_since: float | None = None
        #: Set while the row is registered and the life lock held.
        self.alive = threading.Event()
        #: Set while this process holds the fleet's watcher lock.
        self.watcher = threading.Event()

    def close(self, timeout: float = 5.0) -> None:
        """End the presence: the life lock goes with the connection; peers see a clean exit.

        Call it only once the process has saved or released every job it held.
        """
        self._closing.set()
        self._closed.wait(timeout)

    def run(self) -> None:
        try:
            while not self._closing.is_set():
                try:
                    self._hold()
                except psycopg.Error as error:
                    self.up_since = None
                    self.alive.clear()
                    self.watcher.clear()
                    if self._closing.is_set():
                        break
                    delay = self._backoff.next()
                    log.warning(
                        "%s %s: presence connection lost (%s); reconnecting in %.1fs",
                        self.identity.kind,
                        self.identity.process_id,
                        describe(error),
                        delay,
                    )
                    self._closing.wait(delay)
        finally:
            self.up_since = None
            self.alive.clear()
            self.watcher.clear()
            self._closed.set()

    def _hold(self) -> None:
        name = f"pillars-{self.identity.kind}-presence"
        # Nothing is prepared: behind a transaction pooler a prepared statement
        # stays on one server session, and the presence runs few statements.
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name=name,
            prepare_threshold=None,
        ) as conn:
            lock_key = register(conn, self.identity, self._lease)
            self._backoff.reset()
            if self._lease is None and self.problem is None:
                self._check_session(shared_session(self._conninfo, conn, lock_key))
            if self._listen:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.up_since = time.monotonic()
            self.alive.set()
            self._log_registered(lock_key)
            if self._on_notify is not None:
                self._on_notify()
            self._serve(conn, lock_key)
            conn.execute(sql.PRESENCE_UNREGISTER, {"worker_id": self.identity.process_id})

    def _log_registered(self, lock_key: int) -> None:
        who = f"{self.identity.kind} {self.identity.process_id}"
        if self._lease is None:
            listening = f", listening on {NOTIFY_CHANNEL}" if self._listen else ""
            log.info("%s: registered, holding life lock %s%s", who, lock_key, listening)
        else:
            log.info(
                "%s: registered with a lease of %.1fs (DATABASE_POOL_MODE=transaction: "
                "no life lock and no LISTEN; %s)",
                who,
                self._lease,
                "polling for jobs" if self._on_notify else "heartbeat only",
            )

    def _check_session(self, finding: str | None) -> None:
        """Report a presence without a session of its own, once, to the log and the process."""
        if finding is None or self.problem is not None:
            return
        self.problem = pooler_problem(f"{self.identity.kind} {self.identity.process_id}", finding)
        log.error("%s", self.problem)
        if self._on_problem is not None:
            self._on_problem(self.problem)

    def up_for(self) -> float:
        """Seconds since the presence last registered; 0 while it is away."""
        since = self.up_since
        return 0.0 if since is None else time.monotonic() - since

    def _serve(self, conn: psycopg.Connection[Any], lock_key: int) -> None:
        """Heartbeat every interval; between beats, wait for notifications.

        A process that watches for dead peers and is not the watcher yet
        asks for the watcher lock every second once it has been up for
        `SETTLED` seconds: when the watcher dies, an established peer takes
        over at once (a process that just started, or just came back from
        an outage, cannot judge yet).
        """
        next_beat = next_try = 0.0
        while not self._closing.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self._beat(conn, lock_key)
                next_beat = now + self._interval
            if self._watch and not self.watcher.is_set() and now >= next_try and self.settled():
                self._try_watcher(conn)
                next_try = now + 1.0
            wait = max(0.0, min(1.0, next_beat - time.monotonic()))
            if not self._listen or self._on_notify is None:
                self._closing.wait(wait)
                continue
            for note in conn.notifies(timeout=wait, stop_after=64):
                if self._queues is None or not note.payload or note.payload in self._queues:
                    self._on_notify()

    def settled(self) -> bool:
        """Up long enough to judge peers: they had time to come back from an outage too."""
        return self.up_for() >= SETTLED

    def _beat(self, conn: psycopg.Connection[Any], lock_key: int) -> None:
        """Refresh the row; re-register if a peer forgot it.

        With a life lock, check on every beat that the lock is still this
        session's: a busy transaction pooler may have hidden itself at
        registration.
        """
        params = {"worker_id": self.identity.process_id}
        if conn.execute(sql.PRESENCE_HEARTBEAT, params).fetchone() is None:
            # Peers took this process for dead (its presence was away too long)
            # and deleted the row: start over with a fresh registration.
            raise psycopg.OperationalError("this process's workers row was removed by a peer")
        if self._lease is None and self.problem is None and not holds_life_lock(conn, lock_key):
            self._check_session("its life lock went missing from its own session")

    def _try_watcher(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(sql.TRY_WATCHER_LOCK, {"namespace": sql.LOCK_NAMESPACE}).fetchone()
        if row is not None and row[0]:
            self.watcher.set()
            log.info("%s: watching for dead peers", self.identity.process_id)
