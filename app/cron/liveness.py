"""Cron's proof of life: a `workers` row (kind 'cron'), its heartbeat and its life lock.

One dedicated connection registers the process, holds the session advisory
lock that says it is alive, and refreshes the heartbeat. When the connection
is lost (database restart, `pg_terminate_backend`) it reconnects with
backoff; the scheduler does not depend on it and keeps going meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from sqlalchemy import Connection, Engine, exc

from app.jobs import claims, sql

log = logging.getLogger(__name__)


class Liveness(threading.Thread):
    """Keeps `process_id` registered and alive until `stopping` is set, then unregisters."""

    def __init__(
        self, engine: Engine, process_id: str, *, interval: float, stopping: threading.Event
    ) -> None:
        super().__init__(name="pillars-cron-liveness", daemon=True)
        self._engine = engine
        self._id = process_id
        self._interval = interval
        self._stopping = stopping

    def run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                with self._engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    self._hold(conn)
                    claims.unregister(conn, self._id)
                return
            except exc.SQLAlchemyError as error:
                log.warning(
                    "cron %s: life lock connection lost (%s); reconnecting in %.1fs",
                    self._id,
                    type(getattr(error, "orig", error)).__name__,
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _hold(self, conn: Connection) -> None:
        """Register, take the life lock, and heartbeat until told to stop."""
        lock_key = claims.register(
            conn,
            self._id,
            kind="cron",
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=None,
            concurrency=1,
        )
        conn.execute(sql.TAKE_LIFE_LOCK, {"namespace": sql.LOCK_NAMESPACE, "lock_key": lock_key})
        log.info("cron %s: registered, holding life lock %d", self._id, lock_key)
        while not self._stopping.wait(self._interval):
            conn.execute(sql.HEARTBEAT_WORKER, {"worker_id": self._id})
