"""The worker's side of exports: build the report, tell the user, prune old files."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, undefer

from app import mail
from app.config import get_settings
from app.db import get_engine
from app.jobs import Discard, JobContext, enqueue, job
from app.models import Export, User
from app.reports import csvfile, stats
from app.reports.service import EXPORT_PATH

log = logging.getLogger(__name__)

PRUNE = text("""
DELETE FROM exports WHERE id IN (
    SELECT id FROM exports
    WHERE created_at < now() - make_interval(secs => :older_than)
    -- Small batches: each row carries its files, and short transactions
    -- let vacuum reclaim the space while pruning runs.
    LIMIT :batch
)
""")


@job("reports.build", queue="reports", max_attempts=3, timeout=300)
def build_report(export_id: int, ctx: JobContext) -> dict[str, Any] | None:
    """Summarize the upload, draw the chart, store PDF and CSV, and queue the email.

    Results and the email job commit together. A rerun after that commit
    (at-least-once delivery) finds the results and does nothing.
    """
    from app.reports import render  # ReportLab: loaded by the worker only

    with Session(get_engine()) as session:
        export = session.get(Export, export_id, options=[undefer(Export.upload)])
        if export is None or export.finished_at is not None:
            return None
        ctx.set_progress(0.05, "reading the CSV")
        try:
            table = csvfile.parse(export.upload)
        except csvfile.InvalidCSV as exc:
            export.error, export.finished_at = str(exc), func.now()
            session.commit()
            raise Discard(str(exc)) from None

        def column_done(done: int, total: int) -> None:
            ctx.set_progress(0.1 + 0.6 * done / total, f"summarized column {done} of {total}")

        summaries = stats.summarize(table, column_done)
        ctx.set_progress(0.75, "drawing the chart and the PDF")
        pdf = render.pdf(export.filename, len(table.rows), summaries)
        export.report_pdf = pdf
        export.report_csv = stats.to_csv(summaries)
        export.finished_at = func.now()
        ctx.set_progress(0.95, "saving")
        enqueue(session, "reports.notify_ready", {"export_id": export_id}, context=str(ctx.job_id))
        session.commit()
        return {"export_id": export_id, "pdf_bytes": len(pdf)}


@job("reports.notify_ready", queue="mail", max_attempts=5)
def notify_ready(export_id: int, ctx: JobContext) -> None:
    """Email the owner that their report can be downloaded."""
    settings = get_settings()
    with Session(get_engine()) as session:
        query = select(Export.filename, User.email).join(User).where(Export.id == export_id)
        row = session.execute(query).one_or_none()
    if row is None:
        return
    filename, email = row
    link = f"{settings.site_url}{EXPORT_PATH}{export_id}"
    body = f"Your report for {filename} is ready:\n\n{link}\n"
    key = f"job-{ctx.job_id}"
    subject = f"Your report for {filename} is ready"
    mail.send(settings, mail.compose(settings, email, subject, body, key), key)


@job("reports.prune_exports", max_attempts=3, timeout=600)
def prune_exports(older_than_days: float | None = None, batch: int = 100) -> int:
    """Delete exports, uploads and reports older than EXPORT_RETENTION_DAYS; returns how many."""
    days = get_settings().export_retention_days if older_than_days is None else older_than_days
    deleted = 0
    while True:
        with get_engine().begin() as conn:
            count = conn.execute(PRUNE, {"older_than": days * 86_400, "batch": batch}).rowcount
        deleted += count
        if count < batch:
            break
    log.info("pruned %d export(s) older than %s day(s)", deleted, days)
    return deleted
