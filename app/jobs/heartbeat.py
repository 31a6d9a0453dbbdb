"""Proof of life, and the rescue of jobs whose worker has none.

Every heartbeat interval each worker refreshes its own row and the
heartbeats of the jobs it holds, then rescues running jobs of workers that
died (life lock gone) or froze (heartbeat stale). Any live worker can rescue;
`FOR UPDATE SKIP LOCKED` keeps two from rescuing the same job.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, exc

from app.config import Settings
from app.jobs import claims
from app.jobs.execution import Claimed

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Beats until `stopping` is set; `held` lists the jobs this worker holds."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        worker_id: str,
        held: Callable[[], list[Claimed]],
        stopping: threading.Event,
    ) -> None:
        super().__init__(name="pillars-heartbeat", daemon=True)
        self.engine, self.settings, self.worker_id = engine, settings, worker_id
        self._held, self._stopping = held, stopping

    def run(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat_interval):
            try:
                self.beat()
                self.rescue()
            except exc.SQLAlchemyError as error:
                log.warning("heartbeat failed (%s)", describe(error))

    def beat(self) -> None:
        held = self._held()
        with self.engine.begin() as conn:
            alive = claims.heartbeat(conn, self.worker_id, held)
        # Jobs whose outcome was saved meanwhile are not running any more,
        # but they were not lost either: only warn about those still held.
        still_held: set[tuple[uuid.UUID, int]] = {job.key for job in self._held()}
        for job in held:
            if job.job_id not in alive and job.key in still_held:
                log.warning(
                    "job %s %s: claim lost (rescued by another worker)", job.job_id, job.name
                )

    def rescue(self) -> None:
        grace = 2 * self.settings.heartbeat_interval
        with self.engine.begin() as conn:
            rescued = claims.rescue(conn, grace=grace, stale=self.settings.stale_timeout)
        for r in rescued:
            log.warning("job %s %s rescued (now %s): %s", r.job_id, r.name, r.state, r.reason)


def describe(error: exc.SQLAlchemyError) -> str:
    """Name the driver's error (e.g. OperationalError) rather than SQLAlchemy's wrapper."""
    cause = error.orig if isinstance(error, exc.DBAPIError) else error
    return type(cause).__name__
