"""Export actions over the caller's session: accept an upload, find a user's exports, say how
far one has come. None of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs import enqueue
from app.models import Export, Job
from app.reports import csvfile

#: The site's path of an export's page; the worker links to it in the "ready" email.
EXPORT_PATH = "/exports/"


def create_export(session: Session, user_id: int, filename: str, data: bytes) -> Export:
    """Check the upload, store it and queue its report, all in the caller's transaction.

    Raises `csvfile.InvalidCSV` before anything is written.
    """
    table = csvfile.parse(data)
    export = Export(
        user_id=user_id,
        filename=filename,
        row_count=len(table.rows),
        column_count=len(table.header),
        upload=data,
    )
    session.add(export)
    session.flush()  # the id goes into the job's payload
    export.job_id = enqueue(
        session, "reports.build", {"export_id": export.id}, context=f"user {user_id}"
    )
    return export


def exports_of(session: Session, user_id: int) -> list[Export]:
    """The user's exports, newest first (their files are not loaded)."""
    query = select(Export).where(Export.user_id == user_id).order_by(Export.created_at.desc())
    return list(session.scalars(query))


def export_of(session: Session, user_id: int, export_id: int) -> Export | None:
    """The export with this id if it belongs to the user; None for anyone else's."""
    query = select(Export).where(Export.id == export_id, Export.user_id == user_id)
    return session.scalar(query)


def export_for_job(session: Session, user_id: int, job_id: uuid.UUID) -> Export | None:
    """The user's export built by this job: a job belongs to whoever owns its export."""
    query = select(Export).where(Export.job_id == job_id, Export.user_id == user_id)
    return session.scalar(query)


@dataclass(frozen=True)
class Status:
    """How far an export has come, in words fit for its owner."""

    state: str
    progress: float
    message: str
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "succeeded"


def status(session: Session, export: Export) -> Status:
    """Read the export's state from its results and its build job's row."""
    if export.finished_at is not None and export.error is None:
        return Status("succeeded", 1.0, "ready")
    job = session.get(Job, export.job_id) if export.job_id is not None else None
    if export.error is not None or job is None or job.state in ("failed", "cancelled"):
        error = export.error or "The report could not be built. The error has been logged."
        progress = (job.progress or 0.0) if job is not None else 0.0
        return Status("failed", progress, "failed", error)
    if job.state == "queued" and job.attempts > 0:
        return Status("queued", job.progress or 0.0, "retrying after an error")
    message = job.progress_message or ("waiting for a worker" if job.state == "queued" else "")
    return Status(job.state, job.progress or 0.0, message)
