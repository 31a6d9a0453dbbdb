"""The express claim: a job enqueued while the worker's loop waits on its cycle.

A draining worker's cycle saves a batch of outcomes and claims the next
batch in one statement of a few milliseconds. A NOTIFY that comes during
that statement could only be answered once it returned: on average half a
cycle of waiting before the new job's own claim even started. The express
thread answers at once, on a connection of its own: it claims one job
(highest priority first) and hands it to the job threads, while the loop's
statement is still running. It is the same claim the loop makes, so every
guarantee of a claim holds (fencing by worker and attempt, rescue if the
result never arrives). It claims only into room the loop's statement is not
already claiming into (the worker's `_express_room`): a job held by a worker
with no thread for it would wait there while another worker stands idle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, exc

from app.config import Settings
from app.db import describe
from app.jobs import claims
from app.jobs.execution import Claimed

log = logging.getLogger(__name__)


class Express(threading.Thread):
    """Claims one job for each `poke`, when `room()` says a thread can take it soon.

    `room()` speaks for that room; `settled` is called once for each claim it
    allowed, with the jobs claimed (to hand to the job threads) or None if the
    claim failed. Claims stop with `close`, which waits for a claim under way:
    after it, nothing more is handed over.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        worker_id: str,
        queues: Sequence[str] | None,
        room: Callable[[], bool],
        settled: Callable[[list[Claimed] | None], None],
    ) -> None:
        super().__init__(name="pillars-express", daemon=True)
        self.engine, self.settings = engine, settings
        self.worker_id, self.queues = worker_id, queues
        self._room, self._settled = room, settled
        self._poked = threading.Event()
        self._closed = threading.Event()
        #: Held for a claim and its hand-over; `close` takes it to wait one out.
        self._busy = threading.Lock()
        self._conn: Connection | None = None

    def poke(self) -> None:
        """A job was enqueued while the loop is busy: claim one now."""
        self._poked.set()

    def close(self, timeout: float = 5.0) -> None:
        """Claim no more; wait (up to `timeout`) for a claim under way to be handed over."""
        self._closed.set()
        self._poked.set()
        if self._busy.acquire(timeout=timeout):
            self._busy.release()

    def run(self) -> None:
        while True:
            self._poked.wait()
            self._poked.clear()
            with self._busy:
                if self._closed.is_set():
                    break
                if self._room():
                    self._claim()
        self._drop_connection()

    def _claim(self) -> None:
        """One claim; a fault only costs this shortcut (the loop claims the job anyway)."""
        claimed: list[Claimed] | None = None
        try:
            if self._conn is None or self._conn.invalidated or self._conn.closed:
                self._conn = claims.loop_connection(self.engine, self.settings)
            claimed = claims.claim(self._conn, self.worker_id, self.queues, 1)
        except exc.SQLAlchemyError as error:
            log.warning("worker %s: express claim failed (%s)", self.worker_id, describe(error))
            self._drop_connection()
        except Exception:
            log.exception("worker %s: express claim failed", self.worker_id)
            self._drop_connection()
        finally:
            self._settled(claimed)

    def _drop_connection(self) -> None:
        claims.close_loop_connection(self._conn)
        self._conn = None
