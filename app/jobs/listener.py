"""The worker's ear: LISTEN for new jobs, and hold the life lock that proves it is alive.

One dedicated connection does both. When it is lost (database restart,
`pg_terminate_backend`, a network cut) the listener reconnects with backoff
and never leaves the worker deaf; meanwhile the worker keeps polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection

import psycopg

from app.jobs import sql
from app.jobs.claims import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

#: A connection that the network dropped silently shows no error; probe it.
PROBE_EVERY = 10.0


class Listener(threading.Thread):
    """Calls `on_notify` for every notification about one of `queues` (None: all)."""

    def __init__(
        self,
        conninfo: str,
        *,
        lock_key: Callable[[], int],
        queues: Collection[str] | None,
        on_notify: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        super().__init__(name="pillars-listener", daemon=True)
        self._conninfo = conninfo
        self._lock_key = lock_key
        self._queues = None if queues is None else frozenset(queues)
        self._on_notify = on_notify
        self._stopping = stopping
        #: Set while LISTEN is active and the life lock is held.
        self.connected = threading.Event()

    def run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                self._listen()
                delay = 0.2
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning(
                    "listener connection lost (%s); reconnecting in %.1fs",
                    str(exc).strip() or type(exc).__name__,
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=5, application_name="pillars-listener"
        ) as conn:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (sql.LOCK_NAMESPACE, self._lock_key()))
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.connected.set()
            log.info("listening on %s", NOTIFY_CHANNEL)
            # Jobs may have arrived while nobody listened: look at once.
            self._on_notify()
            last_probe = time.monotonic()
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=1.0, stop_after=64):
                    if self._queues is None or not note.payload or note.payload in self._queues:
                        self._on_notify()
                if time.monotonic() - last_probe > PROBE_EVERY:
                    conn.execute("SELECT 1")
                    last_probe = time.monotonic()
