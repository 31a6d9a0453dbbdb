"""The worker's side of exports: build the report, tell the user, prune old files."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, undefer

from app import mail
from app.db import delete_in_batches
from app.jobs import JobContext, enqueue, job
from app.models import Export, User
from app.reports import csvfile, stats, summary
from app.reports.breakdown import breakdown
from app.reports.names import clean_filename
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
    """Read the whole upload, summarize it, draw the PDF, store PDF and CSV, queue the email.

    Results and the email job commit together. A rerun after that commit
    (at-least-once delivery) finds the export finished and does nothing.

    A file that turns out not to be a CSV ends the export with its message
    for the user, and the job *succeeds*: it did its work, which was to judge
    the file. A failed job would be retried (a bad file cannot get better),
    count as a failure on the dashboard and in the alerts operators set on
    failed jobs, and be offered to "retry all failed".
    """
    from app.reports import render  # ReportLab: loaded by the worker only

    with Session(ctx.engine) as session:
        export = session.get(Export, export_id, options=[undefer(Export.upload)])
        if export is None or export.finished_at is not None:
            return None
        ctx.set_progress(0.02, "reading the file")
        try:
            table = csvfile.parse(export.upload)
        except csvfile.InvalidCSV as exc:
            export.error, export.finished_at = str(exc), func.now()
            session.commit()
            log.info("export %d refused by the full read: %s", export_id, exc)
            return {"export_id": export_id, "refused": str(exc)}

        def column_done(done: int, total: int) -> None:
            ctx.set_progress(0.05 + 0.45 * done / total, f"column {done} of {total}")

        def chart_done(done: int, total: int) -> None:
            ctx.set_progress(0.5 + 0.45 * done / total, f"chart {done} of {total}")

        summaries = stats.summarize(table, column_done)
        found = breakdown(table, summaries)
        pdf = render.pdf(export.filename, len(table.rows), summaries, found, chart_done)
        export.row_count, export.column_count = len(table.rows), len(table.header)
        export.report_pdf = pdf
        export.report_csv = summary.write(summaries)
        export.finished_at = func.now()
        ctx.set_progress(0.97, "saving")
        enqueue(session, "reports.notify_ready", {"export_id": export_id}, context=str(ctx.job_id))
        session.commit()
        return {"export_id": export_id, "pdf_bytes": len(pdf)}


READY = """Your report for {name} is ready: {rows} rows, {columns} columns.

See the summary: {page}
Download the PDF: {pdf}
Download the summary as CSV: {csv}

Reports are deleted after {days} days.
"""


@job("reports.notify_ready", queue="mail", max_attempts=5, timeout=mail.SEND_TIMEOUT)
def notify_ready(export_id: int, ctx: JobContext) -> None:
    """Email the owner that their report can be downloaded, with direct links to both files."""
    settings = ctx.settings
    with Session(ctx.engine) as session:
        query = (
            select(Export.filename, Export.row_count, Export.column_count, User.email)
            .join(User)
            .where(Export.id == export_id)
        )
        row = session.execute(query).one_or_none()
    if row is None:
        return
    filename, rows, columns, email = row
    # Cleaned again: names stored before names were cleaned at upload may hold CR or LF.
    name = clean_filename(filename)
    page = f"{settings.site_url}{EXPORT_PATH}{export_id}"
    body = READY.format(
        name=name,
        rows=f"{rows:,}",
        columns=f"{columns:,}",
        page=page,
        pdf=f"{page}/report.pdf",
        csv=f"{page}/report.csv",
        days=f"{settings.export_retention_days:g}",
    )
    key = f"job-{ctx.job_id}"
    subject = f"Your report for {name} is ready"
    mail.send(settings, mail.compose(settings, email, subject, body, key), key)


@job("reports.prune_exports", max_attempts=3, timeout=600)
def prune_exports(ctx: JobContext, older_than_days: float | None = None, batch: int = 100) -> int:
    """Delete exports, uploads and reports older than EXPORT_RETENTION_DAYS; returns how many."""
    days = ctx.settings.export_retention_days if older_than_days is None else older_than_days
    params = {"older_than": days * 86_400, "batch": batch}
    deleted = delete_in_batches(
        ctx.engine, lambda conn: conn.execute(PRUNE, params).rowcount, batch
    )
    log.info("pruned %d export(s) older than %s day(s)", deleted, days)
    return deleted
