"""Cron's proof of life: the same presence as a worker's, without LISTEN.

The scheduler does not depend on it: while the presence reconnects, the
loop keeps enqueueing (see `app.jobs.processes`).
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from app.jobs.processes import Identity, Presence, conninfo


class Liveness(threading.Thread):
    """Keeps `process_id` registered and alive until `stopping` is set, then unregisters."""

    def __init__(
        self, engine: Engine, process_id: str, *, interval: float, stopping: threading.Event
    ) -> None:
        super().__init__(name="pillars-cron-liveness", daemon=True)
        self._presence = Presence(conninfo(engine), Identity(process_id, "cron"), interval=interval)
        self._stopping = stopping

    def run(self) -> None:
        self._presence.start()
        self._stopping.wait()
        self._presence.close()
