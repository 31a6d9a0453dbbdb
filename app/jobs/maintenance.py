"""Built-in jobs that keep the queue healthy; cron runs them as ordinary schedules."""

from __future__ import annotations

import logging

from app.config import get_settings
from app.db import get_engine
from app.jobs import sql
from app.jobs.registry import job

log = logging.getLogger(__name__)


@job("pillars.prune_jobs", queue="default", max_attempts=3, timeout=600)
def prune_jobs(older_than_days: float | None = None, batch: int = 5_000) -> int:
    """Delete finished jobs older than the retention period, a batch per transaction.

    Short transactions keep vacuum able to reclaim space while pruning runs.
    Returns how many rows were deleted.
    """
    settings = get_settings()
    days = settings.job_retention_days if older_than_days is None else older_than_days
    deleted = 0
    while True:
        with get_engine().begin() as conn:
            params = {"older_than": days * 86_400, "limit": batch}
            count = int(conn.execute(sql.PRUNE, params).scalar_one())
        deleted += count
        if count < batch:
            break
    log.info("pruned %d finished job(s) older than %s day(s)", deleted, days)
    return deleted
