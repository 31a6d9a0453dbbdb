"""What a running handler may know about its job, if it asks for it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from app.config import Settings
from app.jobs.options import storable

#: A progress message is a line for a status page: longer ones are cut.
MAX_PROGRESS_MESSAGE = 1_000


@dataclass(frozen=True)
class JobContext:
    """Passed to handlers that declare a parameter annotated `JobContext`.

    Handlers that do not declare one never see it, so scheduled and ordinary
    jobs share one calling convention: the payload as keyword arguments.
    A handler takes its database and settings from here rather than from
    process-wide singletons: the worker decides which pool its handlers
    share (`WORKER_DB_POOL`), and a test decides what they run against.
    """

    job_id: uuid.UUID
    name: str
    queue: str
    attempt: int
    max_attempts: int
    #: The cron occurrence this job stands for, or None for ordinary jobs.
    scheduled_for: datetime | None = None
    #: The handlers' engine: its pool is shared by every slot of the worker.
    engine: Engine = field(kw_only=True, repr=False)
    settings: Settings = field(kw_only=True, repr=False)
    _report: Callable[[float | None, str | None], None] = field(
        default=lambda fraction, message: None, repr=False
    )

    def set_progress(self, fraction: float | None, message: str | None = None) -> None:
        """Record how far the job has come (0.0 to 1.0) for pages that show live status.

        Written at once in its own transaction, fenced by this attempt, so a
        worker that lost its claim cannot overwrite the new owner's progress.
        """
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(
                    f"a progress message must be text (str), got {type(message).__name__}"
                )
            message = storable(message[:MAX_PROGRESS_MESSAGE])
        self._report(fraction, message)
