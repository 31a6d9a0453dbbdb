"""Export actions over the caller's session: accept an upload, find a user's exports, say how
far one has come. None of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.jobs import enqueue
from app.models import FINISHED_STATES, Export, Job
from app.reports import csvfile

#: The site's path of an export's page; the worker links to it in the "ready" email.
EXPORT_PATH = "/exports/"
#: First key of the transaction advisory lock that serializes one user's uploads
#: ("REP"); distinct from the sign-in locks and the worker's life locks.
UPLOAD_LOCK_NAMESPACE = 0x52_4550
#: What a person refused by the cap is told to wait, in seconds: about one small report.
RETRY_AFTER = 30


class TooManyInFlight(Exception):
    """The user already has the most reports waiting or being built that one may have."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} reports waiting or being built, the most one person "
            f"may have at once. Try again in a minute, when one of them is ready."
        )
        self.limit = limit


def in_flight(session: Session, user_id: int) -> int:
    """How many of the user's reports are waiting or being built right now."""
    query = (
        select(func.count())
        .select_from(Export)
        .join(Job, Job.job_id == Export.job_id)
        .where(
            Export.user_id == user_id,
            Export.finished_at.is_(None),
            Job.state.in_(("waiting", "queued", "running")),
        )
    )
    return session.scalar(query) or 0


def create_export(
    session: Session,
    user_id: int,
    filename: str,
    data: bytes,
    in_flight_max: int,
    builds_at_once: int = 1,
) -> Export:
    """Check the head of the upload, store it and queue its report, in the caller's transaction.

    Raises `csvfile.InvalidCSV` or `TooManyInFlight` before anything is written.
    The count and the insert happen under a transaction advisory lock per
    user, so concurrent uploads (any process, any machine) are counted one
    after the other and the cap is exact; the lock ends with the transaction.
    Rows are counted by the worker, which reads the whole file. At most
    `builds_at_once` of one user's reports are built at a time, whatever the
    number of workers (a concurrency key per user): users take turns.
    """
    head = csvfile.check_head(data)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, :user_id)"),
        {"namespace": UPLOAD_LOCK_NAMESPACE, "user_id": user_id},
    )
    if in_flight(session, user_id) >= in_flight_max:
        raise TooManyInFlight(in_flight_max)
    export = Export(
        user_id=user_id,
        filename=filename,
        row_count=0,
        column_count=len(head.header),
        upload=data,
    )
    session.add(export)
    session.flush()  # the id goes into the job's payload
    export.job_id = enqueue(
        session,
        "reports.build",
        {"export_id": export.id},
        context=f"user {user_id}",
        concurrency_key=f"user:{user_id}",
        concurrency_limit=builds_at_once,
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
    """How far an export has come, in words fit for its owner.

    `state` is the machine's word (the build job's state; "succeeded" once the
    report is stored, "failed" with `error` once it cannot be); `label` is the
    person's: "Waiting", "Building — column 3 of 5", "Ready", "Failed".
    """

    state: str
    progress: float
    label: str
    #: What the worker is doing right now ("column 3 of 5"), or why it waits.
    message: str = ""
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "succeeded"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


UNEXPLAINED = "The report could not be built. The error has been logged."


def status(session: Session, export: Export) -> Status:
    """Read the export's state from its results and its build job's row."""
    if export.finished_at is not None and export.error is None:
        return Status("succeeded", 1.0, "Ready")
    job = session.get(Job, export.job_id) if export.job_id is not None else None
    if export.error is not None or job is None or job.state in ("failed", "cancelled"):
        progress = (job.progress or 0.0) if job is not None else 0.0
        return Status("failed", progress, "Failed", error=export.error or UNEXPLAINED)
    progress = job.progress or 0.0
    if job.state == "waiting":  # the user's earlier reports are built first
        return Status("queued", progress, "Waiting", "for your earlier reports")
    if job.state == "queued" and job.attempts > 0:
        return Status("queued", progress, "Waiting", "retrying after an error")
    if job.state == "queued":
        return Status("queued", progress, "Waiting", "for a free worker")
    message = job.progress_message or "starting"
    return Status(job.state, progress, f"Building — {message}", message)


def statuses(session: Session, exports: list[Export]) -> dict[int, Status]:
    """The status of each export; only unfinished ones cost a read of their job."""
    return {export.id: status(session, export) for export in exports}
