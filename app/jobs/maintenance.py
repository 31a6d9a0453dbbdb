"""Built-in jobs that keep the queue healthy; cron runs them as ordinary schedules."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text

from app.db import delete_in_batches
from app.jobs import audit, sql
from app.jobs.context import JobContext
from app.jobs.registry import job

log = logging.getLogger(__name__)

# How long ago the newest finished job beyond the first `:keep` finished, read
# backwards along ix_jobs_finished: the age that pruning by count cuts at.
AGE_BEYOND_NEWEST = text("""
SELECT extract(epoch FROM now() - finished_at) FROM jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
ORDER BY finished_at DESC OFFSET :keep LIMIT 1
""")


@job("pillars.prune_jobs", queue="default", max_attempts=3, timeout=600)
def prune_jobs(
    ctx: JobContext,
    older_than_days: float | None = None,
    batch: int = 5_000,
    keep_at_most: int | None = None,
) -> int:
    """Delete finished jobs older than JOB_RETENTION_DAYS, and beyond the newest
    JOB_RETENTION_ROWS; returns how many rows were deleted."""
    settings = ctx.settings
    days = settings.job_retention_days if older_than_days is None else older_than_days
    keep = settings.job_retention_rows if keep_at_most is None else keep_at_most
    return prune_finished(ctx.engine, days, keep, batch)


def prune_finished(engine: Engine, days: float, keep: int | None, batch: int = 5_000) -> int:
    """Delete finished jobs older than `days`, a batch per transaction; return how many.

    Past `keep` finished jobs (None: no cap), the oldest go too, whatever their
    age: the table's size then has a bound that a burst of traffic cannot
    move (docs/operations.md, Retention).
    """
    deleted = _prune(engine, days * 86_400, batch)
    if keep:
        with engine.connect() as conn:
            age = conn.execute(AGE_BEYOND_NEWEST, {"keep": keep}).scalar()
        if age is not None:
            # Everything as old as the first job beyond the newest `keep`, and older.
            deleted += _prune(engine, max(0.0, float(age) - 1e-6), batch)
    log.info(
        "pruned %d finished job(s) older than %s day(s)%s",
        deleted,
        days,
        f" or beyond the newest {keep}" if keep else "",
    )
    return deleted


def _prune(engine: Engine, older_than: float, batch: int) -> int:
    params = {"older_than": older_than, "limit": batch}
    return delete_in_batches(
        engine, lambda conn: int(conn.execute(sql.PRUNE, params).scalar_one()), batch
    )


@job("pillars.prune_audit", queue="default", max_attempts=3, timeout=600)
def prune_audit(ctx: JobContext, older_than_days: float | None = None, batch: int = 5_000) -> int:
    """Delete records of what people did (`app.jobs.audit`) older than
    AUDIT_RETENTION_DAYS; returns how many were deleted."""
    days = ctx.settings.audit_retention_days if older_than_days is None else older_than_days
    deleted = audit.prune(ctx.engine, days, batch)
    log.info("pruned %d operator action record(s) older than %s day(s)", deleted, days)
    return deleted
