"""Cron's proof of life: the same presence as a worker's, without LISTEN.

The scheduler does not depend on it: while the presence reconnects, the
loop keeps enqueueing (see `app.jobs.processes`). A presence that finds no
session of its own (an unannounced transaction pooler) stops the process.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from app.config import Settings
from app.jobs.pooling import link
from app.jobs.processes import Identity, Presence


class Liveness(threading.Thread):
    """Keeps `process_id` registered and alive until `stopping` is set, then unregisters."""

    def __init__(
        self, engine: Engine, settings: Settings, process_id: str, *, stopping: threading.Event
    ) -> None:
        super().__init__(name="pillars-cron-liveness", daemon=True)
        self._presence = Presence(
            link(engine, settings),
            Identity(process_id, "cron"),
            interval=settings.heartbeat_interval,
            on_problem=lambda problem: stopping.set(),
        )
        self._stopping = stopping

    @property
    def problem(self) -> str | None:
        """Why the presence stopped the process, if it did."""
        return self._presence.problem

    def run(self) -> None:
        self._presence.start()
        self._stopping.wait()
        self._presence.close()
