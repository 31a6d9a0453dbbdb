"""Jobs for tests, committed and in any state: one place instead of a pasted block per test."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import JobContext, enqueue
from app.jobs.ids import job_id_at


def job(
    engine: Engine, name: str = "test.add", payload: Mapping[str, Any] | None = None, **options: Any
) -> uuid.UUID:
    """Enqueue one job with `options` (queue, priority, keys...) and commit it."""
    with Session(engine) as session:
        job_id = enqueue(session, name, {"a": 1} if payload is None else dict(payload), **options)
        session.commit()
    return job_id


def row(
    engine: Engine,
    name: str = "test.add",
    payload: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    **columns: Any,
) -> uuid.UUID:
    """A committed job, then with any columns (state, errors, result...) set as a test needs.

    Setting `created_at` back-dates the job id too, since ids sort by creation time.
    """
    job_id = job(engine, name, {"a": 1, "b": 2} if payload is None else payload, queue=queue)
    if "created_at" in columns:
        columns["job_id"] = job_id_at(columns["created_at"].timestamp())
    if columns:
        documents = {k: json.dumps(v) for k, v in columns.items() if isinstance(v, dict | list)}
        assignments = ", ".join(
            f"{k} = CAST(:{k} AS jsonb)" if k in documents else f"{k} = :{k}" for k in columns
        )
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE jobs SET {assignments} WHERE job_id = :old_id"),
                {**columns, **documents, "old_id": job_id},
            )
    return uuid.UUID(str(columns.get("job_id", job_id)))


def context(engine: Engine, settings: Settings, name: str = "test.direct") -> JobContext:
    """What a handler gets from the worker, for calling it directly in a test."""
    return JobContext(uuid.uuid4(), name, "default", 1, 1, engine=engine, settings=settings)
