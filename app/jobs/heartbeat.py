"""Proof of life for the jobs a worker holds, and the rescue of jobs whose worker has none.

Every heartbeat interval each worker refreshes the heartbeats of the jobs it
holds, then rescues running jobs of workers that died or froze (see
`sql.RESCUE`). Any live worker can rescue; `FOR UPDATE SKIP LOCKED` keeps two
from rescuing the same job.

A death is known to the database at once (the life lock goes with the
session), so the one worker that holds the watcher lock looks for lockless
peers every `WATCH_EVERY` seconds and names those missing their lock for
`SUSPECT_AFTER` seconds as suspects: their jobs are back in the queue within
about two seconds instead of after the heartbeat grace. The delay is what a
live process needs to reconnect its presence after a dropped connection;
for the first seconds after a database restart, when every presence is
reconnecting at once, nobody is a suspect.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, exc

from app.config import Settings
from app.db import describe
from app.jobs import claims
from app.jobs.execution import Claimed
from app.jobs.processes import SETTLED, Presence

log = logging.getLogger(__name__)

WATCH_EVERY = 0.25
SUSPECT_AFTER = 1.25


class Heartbeat(threading.Thread):
    """Beats until `finished` is set; `held` lists the jobs this worker holds.

    It outlives the worker's stop signal: jobs still draining at shutdown
    keep their heartbeats until they are saved or released.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        worker_id: str,
        held: Callable[[], list[Claimed]],
        presence: Presence,
        finished: threading.Event,
    ) -> None:
        super().__init__(name="pillars-heartbeat", daemon=True)
        self.engine, self.settings, self.worker_id = engine, settings, worker_id
        self._held, self._presence, self._finished = held, presence, finished
        self._lockless_since: dict[str, float] = {}
        #: When a heartbeat or rescue last failed: judging waits for calm again.
        self._failed_at = 0.0

    @property
    def grace(self) -> float:
        """How late a heartbeat may be before a lockless process counts as dead."""
        return 2 * self.settings.heartbeat_interval

    def run(self) -> None:
        next_beat = time.monotonic() + self.settings.heartbeat_interval
        # Ticks of WATCH_EVERY whether watching or not (no query unless due):
        # a process that becomes the watcher starts watching at once.
        while not self._finished.wait(max(0.0, min(WATCH_EVERY, next_beat - time.monotonic()))):
            watching = self._presence.watcher.is_set()
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.settings.heartbeat_interval
                    self.beat()
                    self.rescue(self._suspects() if watching else [])
                elif watching and (suspects := self._suspects()):
                    self.rescue(suspects)
            except exc.SQLAlchemyError as error:
                self._failed_at = time.monotonic()
                log.warning("heartbeat failed (%s)", describe(error))
            except Exception:
                self._failed_at = time.monotonic()
                log.exception("heartbeat failed")

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

    def rescue(self, suspects: list[str]) -> None:
        held = self._held()
        with self.engine.begin() as conn:
            rescued = claims.rescue(
                conn,
                grace=self.grace,
                stale=self.settings.stale_timeout,
                suspects=suspects,
                worker_id=self.worker_id,
                held=held,
                judge=self._settled(),
            )
        for r in rescued:
            log.warning("job %s %s rescued (now %s): %s", r.job_id, r.name, r.state, r.reason)

    def _settled(self) -> bool:
        """Whether this worker may judge peers: up, and calm, for `SETTLED` seconds."""
        calm = time.monotonic() - self._failed_at >= SETTLED
        if not (calm and self._presence.settled()):
            self._lockless_since.clear()
            return False
        return True

    def _suspects(self) -> list[str]:
        """Peers seen without their life lock for at least `SUSPECT_AFTER` seconds."""
        if not self._settled():
            return []
        with self.engine.connect() as conn:
            lockless = claims.lockless_workers(conn)
        now = time.monotonic()
        self._lockless_since = {w: self._lockless_since.get(w, now) for w in lockless}
        return [w for w, since in self._lockless_since.items() if now - since >= SUSPECT_AFTER]
