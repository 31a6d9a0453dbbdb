"""The record of what people did to jobs, queues and schedules: who, what, when, through what.

`record` writes into the caller's session without committing, like every
operation it records: the action and its record commit together, or
neither does. The job page lists a job's records (`for_job`); records of a
deleted job stay, so they say who deleted it, until AUDIT_RETENTION_DAYS
have passed (`prune`, run daily by `pillars.prune_audit`).
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from app.db import delete_in_batches

#: Longest actor, subject or detail kept: what a person wrote, not what an attacker sent.
MAX_TEXT = 500


@dataclass(frozen=True)
class Actor:
    """Who acted: an admin's email on the dashboard, `user@host` on the command line."""

    name: str
    via: str  # "dashboard" or "cli"


def shell_user() -> Actor:
    """The account on this machine that runs a command, as the record shows it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return Actor(f"{user}@{socket.gethostname()}", "cli")


_RECORD = text("""
INSERT INTO operator_actions (actor, via, action, job_id, subject, detail)
SELECT :actor, :via, :action, job_id, :subject, :detail
FROM unnest(CAST(:job_ids AS uuid[])) AS job_id
""")


def _clip(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a name from a form might.
    return value.replace("\x00", "")[:MAX_TEXT]


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    job_ids: Sequence[uuid.UUID] = (),
    subject: str = "",
    detail: str = "",
) -> None:
    """Record `action` once per job in `job_ids`, or once (about `subject`) without jobs."""
    ids: list[uuid.UUID | None] = list(job_ids) or [None]
    session.connection().execute(
        _RECORD,
        {
            "actor": _clip(actor.name),
            "via": actor.via,
            "action": action,
            "job_ids": ids,
            "subject": _clip(subject),
            "detail": _clip(detail),
        },
    )


def for_job(conn: Connection, job_id: uuid.UUID) -> list[Any]:
    """What was done to one job, oldest first (ix_operator_actions_job_id)."""
    return list(
        conn.execute(
            text("""
            SELECT at, actor, via, action, subject, detail FROM operator_actions
            WHERE job_id = :job_id ORDER BY id
        """),
            {"job_id": job_id},
        )
    )


def recent(conn: Connection, limit: int = 10) -> list[Any]:
    """The newest actions, one line per action however many jobs it touched.

    The records of one bulk action share their transaction's `now()`, so
    grouping on it folds them together. Reads only the newest rows of the
    primary key.
    """
    return list(
        conn.execute(
            text("""
            SELECT at, actor, via, action, subject, detail, count(job_id) AS jobs,
                   min(CAST(job_id AS text)) AS job_id
            FROM (SELECT * FROM operator_actions ORDER BY id DESC LIMIT :scan) AS newest
            GROUP BY at, actor, via, action, subject, detail
            ORDER BY at DESC LIMIT :limit
        """),
            {"limit": limit, "scan": 50 * limit},
        )
    )


# Oldest first along the primary key: ids grow with time, so each full batch
# is the head of the index. The last batch, short of old records, reads on to
# the end of the table: once a day, over a few rows per human action.
_PRUNE = text("""
WITH gone AS (
    DELETE FROM operator_actions
    WHERE id IN (SELECT id FROM operator_actions
                 WHERE at < now() - make_interval(secs => :older_than)
                 ORDER BY id LIMIT :limit)
    RETURNING 1
)
SELECT count(*) FROM gone
""")


def prune(engine: Engine, days: float, batch: int = 5_000) -> int:
    """Delete records older than `days`, a batch per transaction; return how many."""
    params = {"older_than": days * 86_400, "limit": batch}
    return delete_in_batches(
        engine, lambda conn: int(conn.execute(_PRUNE, params).scalar_one()), batch
    )
