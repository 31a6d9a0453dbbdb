"""Writing queue messages: the contract between web, cron and worker.

A message is a job name and a JSON payload. It is written inside the
caller's SQLAlchemy session and never committed here: the job exists only if
the caller's own writes commit, so "user created" and "welcome email queued"
can never disagree.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app import logs, tracing
from app.config import get_payload_limits
from app.jobs import flow, options, sql, writing
from app.jobs.errors import UnknownJob
from app.jobs.ids import new_job_id, new_job_ids
from app.jobs.registry import JobSpec, registry


@dataclass(frozen=True)
class JobRequest:
    """One message for `enqueue_many`; options left as None take the handler's defaults."""

    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    run_at: datetime | None = None
    delay: float | timedelta | None = None
    max_attempts: int | None = None
    unique_key: str | None = None
    context: str = ""
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    ordering_key: str | None = None
    on_failure: str | None = None


def _prepare(request: JobRequest) -> dict[str, Any]:
    """Validate one message and its options; its columns, the handler's defaults filled in.

    Everything the database could refuse is refused here first (see
    `app.jobs.options` and `app.jobs.payloads`). The payload is JSON text.
    The handler's defaults were checked when it was registered; only the
    options a message sets are checked again.
    """
    if not isinstance(request.name, str):
        raise UnknownJob(f"a job name must be a string, got {type(request.name).__name__}")
    spec: JobSpec = registry.get(request.name)
    raw = request.payload
    document = dict(raw) if isinstance(raw, Mapping) else raw
    limits = get_payload_limits()
    payload = spec.encode_payload(document, max_depth=limits.max_depth, max_bytes=limits.max_bytes)
    run_at = options.moment(request.run_at, "run_at")
    if run_at is not None and request.delay is not None:
        raise ValueError("give run_at or delay, not both")
    priority, max_attempts, context = request.priority, request.max_attempts, request.context
    return {
        "name": spec.name,
        "payload": payload,
        "queue": spec.queue if request.queue is None else options.queue_name(request.queue),
        "priority": spec.priority
        if priority is None
        else options.whole(priority, "priority", *options.INT4),
        "run_at": run_at,
        "delay": options.delay_seconds(request.delay),
        "max_attempts": spec.max_attempts
        if max_attempts is None
        else options.whole(max_attempts, "max_attempts", 1, options.MAX_ATTEMPTS),
        "unique_key": None
        if request.unique_key is None
        else options.text(request.unique_key, "unique_key", max_bytes=options.MAX_UNIQUE_KEY_BYTES),
        "context": context
        if type(context) is str and context == ""
        else options.text(context, "context", max_chars=options.MAX_CONTEXT_CHARS),
        **_flow(spec, request, document),
    }


def _flow(spec: JobSpec, request: JobRequest, payload: Mapping[str, Any]) -> dict[str, object]:
    """The job's flow columns: the request's key, else the handler's (a key given in the
    request replaces the handler's key of either kind)."""
    keyed = request.concurrency_key is not None or request.ordering_key is not None
    if (
        not keyed
        and spec.keyless
        and request.concurrency_limit is None
        and request.on_failure is None
    ):
        return flow.NO_FLOW
    source = request if keyed else spec
    resolved = flow.resolve(
        payload,
        concurrency_key=source.concurrency_key,
        concurrency_limit=request.concurrency_limit
        if request.concurrency_limit is not None
        else source.concurrency_limit,
        ordering_key=source.ordering_key,
        on_failure=request.on_failure if request.on_failure is not None else source.on_failure,
    )
    return flow.NO_FLOW if resolved is None else resolved.columns()


def enqueue(
    session: Session,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    max_attempts: int | None = None,
    unique_key: str | None = None,
    context: str = "",
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
    ordering_key: str | None = None,
    on_failure: str | None = None,
    cron_name: str | None = None,
    scheduled_for: datetime | None = None,
) -> uuid.UUID:
    """Add a job to the caller's transaction and return its id; does not commit.

    Raises `UnknownJob` or `InvalidPayload` before anything is written. With a
    `unique_key`, a live (waiting, queued or running) job with the same key is
    returned instead of adding a second one. Higher `priority` runs first.
    With a `concurrency_key` at most `concurrency_limit` (default 1) jobs of
    that key run at once; with an `ordering_key` they run one at a time, in
    order (see `app.jobs.flow`).
    """
    row = _prepare(
        JobRequest(
            name=name,
            payload={} if payload is None else payload,
            queue=queue,
            priority=priority,
            run_at=run_at,
            delay=delay,
            max_attempts=max_attempts,
            unique_key=unique_key,
            context=context,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
            ordering_key=ordering_key,
            on_failure=on_failure,
        )
    )
    scheduled_for = options.moment(scheduled_for, "scheduled_for")
    params = {
        **row,
        **origin(),
        "job_id": new_job_id(),
        "cron_name": None
        if cron_name is None
        else options.text(cron_name, "cron_name", max_chars=options.MAX_CRON_NAME_CHARS),
        "scheduled_for": scheduled_for,
        # The zone the occurrence was meant in, so the handler gets it back in it.
        "scheduled_zone": getattr(scheduled_for and scheduled_for.tzinfo, "key", None),
    }
    conn = session.connection()
    if not tracing.enabled:
        return _insert(conn, params)
    with tracing.span(f"send {params['queue']}", "PRODUCER", **_sending(params["queue"])) as span:
        params["trace_context"] = tracing.inject()  # this span's, for the worker to follow
        job_id = _insert(conn, params)
        if span is not None:
            span.set_attribute("messaging.message.id", str(job_id))
            span.set_attribute("pillars.job.name", params["name"])
        return job_id


def _insert(conn: Connection, params: dict[str, Any]) -> uuid.UUID:
    """Write one prepared job in the session's own connection and transaction.

    The plain case goes through the driver itself: SQLAlchemy's
    per-statement work would cost more than the round trip.
    """
    unique_key, cron_name = params["unique_key"], params["cron_name"]
    if unique_key is None and cron_name is None:
        return writing.insert_one(conn, params)
    with _savepoint(conn):
        job_id = conn.execute(sql.ENQUEUE_UNIQUE, params).scalar_one_or_none()
        if job_id is None:
            job_id = _existing(conn, unique_key, cron_name, params["scheduled_for"])
        if job_id is None:
            # The conflicting job finished between the insert and the lookup: insert again.
            job_id = conn.execute(sql.ENQUEUE_UNIQUE, params).scalar_one()
        return job_id


def _sending(queue: str) -> dict[str, Any]:
    """A producer span's attributes (OpenTelemetry's messaging conventions)."""
    return {
        "messaging__system": tracing.SYSTEM,
        "messaging__operation__type": "send",
        "messaging__operation__name": "send",
        "messaging__destination__name": queue,
    }


#: Origins and request ids are for people to read: longer ones are cut.
MAX_ORIGIN_CHARS = 200


def origin() -> dict[str, str | None]:
    """Where jobs enqueued now come from, read from the context (`app.logs.bound`): the
    request, cron occurrence or job running here, its request id and trace context."""
    ids = logs.current()
    came_from, request_id = ids.get("origin"), ids.get("request_id")
    return {
        "origin": None if came_from is None else str(came_from)[:MAX_ORIGIN_CHARS],
        "request_id": None if request_id is None else logs.request_id(str(request_id)),
        "trace_context": tracing.inject(),
    }


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """Write inside a savepoint: if the database still refuses, the caller's transaction lives.

    Without it a refused insert would abort the whole transaction, and a
    caller that catches the error and commits would lose its own writes
    without a word (COMMIT of an aborted transaction is a rollback).
    """
    savepoint = conn.begin_nested()
    try:
        yield
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    savepoint.commit()


def _existing(
    conn: Connection, unique_key: str | None, cron_name: str | None, scheduled_for: datetime | None
) -> uuid.UUID | None:
    """Find the live job with this unique key, or the job for this cron occurrence."""
    found: uuid.UUID | None = None
    if unique_key is not None:
        lookup = conn.execute(sql.FIND_LIVE_BY_UNIQUE_KEY, {"unique_key": unique_key})
        found = lookup.scalar_one_or_none()
    if found is None and cron_name is not None:
        occurrence = {"cron_name": cron_name, "scheduled_for": scheduled_for}
        found = conn.execute(sql.FIND_OCCURRENCE, occurrence).scalar_one_or_none()
    return found


def enqueue_many(session: Session, requests: Iterable[JobRequest]) -> list[uuid.UUID]:
    """Add many jobs in one statement and return the ids of those inserted; does not commit.

    Every message is validated before the batch stays written: a message
    refused by the checks leaves nothing behind, however far into the batch
    it comes, and the caller's transaction usable. Messages whose
    `unique_key` matches a live job are skipped (their ids are not returned).
    """
    listed = list(requests)
    if not listed:
        return []
    rows = _prepared(listed)
    first = next(rows)
    with tracing.span(f"send {first['queue']}", "PRODUCER", **_sending(first["queue"])):
        came_from = origin()
        ids = new_job_ids(len(listed))
        conn = session.connection()
        if len(listed) >= writing.COPY_FROM and all(map(_copyable, listed)):
            # Written as they are checked: the server stores the first rows
            # while Python still checks the rest.
            return writing.copy_many(conn, ids, itertools.chain([first], rows), came_from)
        jobs = [
            {"job_id": job_id, **row, **came_from}
            for job_id, row in zip(ids, itertools.chain([first], rows), strict=True)
        ]
        return writing.insert_many(conn, jobs)


def _prepared(requests: Iterable[JobRequest]) -> Iterator[dict[str, Any]]:
    """Each message's columns (see `_prepare`); a refusal names the message's place."""
    for index, request in enumerate(requests):
        try:
            yield _prepare(request)
        except (UnknownJob, ValueError) as exc:
            name = options.short(getattr(request, "name", None))
            raise type(exc)(f"job {index} of the batch ({name}): {exc}") from None


def _copyable(request: JobRequest) -> bool:
    """Whether COPY can write the message as it is: the table's defaults do the rest."""
    return request.unique_key is None and request.run_at is None and request.delay is None


def pause_queue(session: Session, queue: str, paused_by: str = "") -> bool:
    """Stop every worker from claiming from `queue` (running jobs finish); does not commit.
    False if it was paused already (the first pause, and who made it, stand)."""
    params = {
        "queue": options.queue_name(queue),
        "paused_by": options.text(paused_by, "paused_by", max_chars=200),
    }
    return session.connection().execute(sql.PAUSE_QUEUE, params).first() is not None


def resume_queue(session: Session, queue: str) -> bool:
    """Let workers claim from `queue` again; they wake when the caller commits. False if it
    was not paused."""
    found = session.connection().execute(sql.RESUME_QUEUE, {"queue": options.queue_name(queue)})
    return found.first() is not None
