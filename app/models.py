"""Every table of the application, as SQLAlchemy 2.0 typed models.

The web tier, the worker and cron share these models; Alembic migrations are
generated from them and `alembic check` proves the two never drift apart.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATES = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES = ("succeeded", "failed", "cancelled")
#: `state IN (...finished...)` as SQL: one spelling, so a query's condition and a
#: partial index's predicate always match and the planner can use the index.
FINISHED_SQL = "state IN (" + ", ".join(f"'{state}'" for state in FINISHED_STATES) + ")"

#: Constraint names are predictable so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)
#: The range of times a job may carry (see `app.jobs.options`).
_READABLE = "'0001-01-02 00:00+00' AND '9999-12-30 00:00+00'"
_SCHEDULABLE = "'0001-01-02 00:00+00' AND '9000-01-01 00:00+00'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    """One unit of background work: the queue message plus its life story.

    Rows are never deleted when a job ends: finished jobs keep their state so
    people and the dashboard can read them, until the prune job removes them.
    """

    __tablename__ = "jobs"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("pillars_uuidv7()")
    )
    name: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    queue: Mapped[str] = mapped_column(Text, server_default=text("'default'"))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    state: Mapped[str] = mapped_column(Text, server_default=text("'queued'"))
    run_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: Who enqueued the job and why, for people reading the dashboard.
    context: Mapped[str] = mapped_column(Text, server_default=text("''"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    locked_by: Mapped[str | None] = mapped_column(Text)
    locked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: One entry per failed attempt: attempt, at, worker, error, traceback.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    unique_key: Mapped[str | None] = mapped_column(Text)
    #: What the handler returned (JSON), for callers polling a job's outcome.
    result: Mapped[Any | None] = mapped_column(JSONB)
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(Text)
    #: The schedule that enqueued the job and the occurrence it stands for.
    cron_name: Mapped[str | None] = mapped_column(Text)
    scheduled_for: Mapped[datetime | None] = mapped_column(Timestamp)
    #: The timezone the occurrence was meant in, so the handler gets it back in it.
    scheduled_zone: Mapped[str | None] = mapped_column(Text)
    #: Flow control (`app/jobs/flow.py`): the key whose limit this job counts
    #: against, the limit, and whether the key is a concurrency key or an
    #: ordering key (one at a time, in order; `ordering_block`: a job that
    #: ends failed holds its key until an operator retries or deletes it).
    flow_key: Mapped[str | None] = mapped_column(Text)
    flow_limit: Mapped[int | None] = mapped_column(Integer)
    flow_kind: Mapped[str | None] = mapped_column(Text)
    #: A waiting job the promoter should look at: new, or its key has room again.
    flow_fresh: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: Where the job came from: `request GET /route`, `cron NAME TIME` or `job PARENT_ID`.
    origin: Mapped[str | None] = mapped_column(Text)
    #: The id of the request it came from, carried on by jobs that enqueue jobs.
    request_id: Mapped[str | None] = mapped_column(Text)
    #: W3C `traceparent` (and `tracestate`) of the span that enqueued it, when traced.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint(
            "state IN ('waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="state",
        ),
        CheckConstraint(
            "(flow_key IS NULL) = (flow_kind IS NULL) AND (flow_key IS NULL) = (flow_limit IS NULL)"
            " AND flow_limit >= 1"
            " AND flow_kind IN ('concurrency', 'ordering', 'ordering_block')",
            name="flow",
        ),
        CheckConstraint("jsonb_typeof(payload) = 'object'", name="payload_object"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # A waiting job waits for its key: without one it would wait for no one
        # (and such a row failed every promotion).
        CheckConstraint("state <> 'waiting' OR flow_key IS NOT NULL", name="waiting_keyed"),
        # Times every reader (worker, dashboard, Python's datetime) can represent:
        # an `infinity` or a year past 9999 would fail wherever the row is read
        # (and `created_at`, in every claim: it reports the job's age).
        CheckConstraint(f"run_at BETWEEN {_READABLE}", name="run_at_readable"),
        CheckConstraint(
            f"scheduled_for IS NULL OR scheduled_for BETWEEN {_READABLE}",
            name="scheduled_for_readable",
        ),
        CheckConstraint(f"created_at BETWEEN {_READABLE}", name="created_at_readable"),
        *(
            CheckConstraint(
                f"{column} IS NULL OR {column} BETWEEN {_READABLE}", name=f"{column}_readable"
            )
            for column in ("locked_at", "heartbeat_at", "started_at", "finished_at")
        ),
        # Claiming from all queues walks this index in claim order and stops
        # after LIMIT rows: no sort, whatever the backlog. Partial, so it
        # holds only queued rows and stays small with millions of finished ones.
        Index(
            "ix_jobs_claim",
            text("priority DESC"),
            "run_at",
            postgresql_where=text("state = 'queued'"),
        ),
        # The same for workers bound to named queues (equality on queue first).
        Index(
            "ix_jobs_claim_queue",
            "queue",
            text("priority DESC"),
            "run_at",
            postgresql_where=text("state = 'queued'"),
        ),
        # Flow control: a key's waiting jobs in the order they are let in...
        Index(
            "ix_jobs_waiting",
            "flow_key",
            text("priority DESC"),
            "job_id",
            postgresql_where=text("state = 'waiting'"),
        ),
        # ... the few the promoter must look at ...
        Index("ix_jobs_fresh", "job_id", postgresql_where=text("state = 'waiting' AND flow_fresh")),
        # ... and a key's active jobs, counted against its limit. Jobs without
        # a key are in none of these indexes.
        Index(
            "ix_jobs_flow_active",
            "flow_key",
            postgresql_where=text(
                "flow_key IS NOT NULL AND (state IN ('queued', 'running')"
                " OR (state = 'failed' AND flow_kind = 'ordering_block'))"
            ),
        ),
        # The rescuer looks up running jobs by worker. Not by heartbeat: a
        # job's heartbeat then changes no indexed column, so it can be a
        # HOT update.
        Index("ix_jobs_running", "locked_by", postgresql_where=text("state = 'running'")),
        # Pruning and "finished per minute" read finished jobs by age.
        Index(
            "ix_jobs_finished",
            "finished_at",
            postgresql_where=text(FINISHED_SQL),
        ),
        # A unique key blocks duplicates only while a job is live (waiting for
        # its flow key too: two waiting duplicates would be promoted into one
        # key); once it finishes the same key may be enqueued again.
        Index(
            "uq_jobs_unique_key",
            "unique_key",
            unique=True,
            postgresql_where=text(
                "unique_key IS NOT NULL AND state IN ('waiting', 'queued', 'running')"
            ),
        ),
        # The dashboard's job list: newest first by job id (UUIDv7 ids sort by
        # creation time), keyset-paginated. The primary key serves the
        # unfiltered list and the common states; a name and the rare final
        # states get an index of their own. Every index costs each state
        # change (updates that change `state` are never HOT), so no more:
        # running jobs stay out of the name index, so a claim adds no entry
        # to it; they are few (no more than the workers' threads, and those
        # awaiting rescue) and are read through ix_jobs_running instead.
        Index(
            "ix_jobs_name_newest",
            "name",
            text("job_id DESC"),
            postgresql_where=text("state <> 'running'"),
        ),
        Index(
            "ix_jobs_ended_badly_newest",
            "state",
            text("job_id DESC"),
            postgresql_where=text("state IN ('failed', 'cancelled')"),
        ),
        # One job per schedule occurrence, even with several cron processes.
        Index(
            "uq_jobs_cron_occurrence",
            "cron_name",
            "scheduled_for",
            unique=True,
            postgresql_where=text("cron_name IS NOT NULL"),
        ),
        # The dashboard's payload search (`payload @> '{"report_id": 7}'`) over
        # finished jobs, the bulk of the table. Partial, so a job enters it once,
        # when it ends: enqueue and claim never touch it, and live jobs are
        # searched through their own small partial indexes instead. jsonb_path_ops
        # serves only @>, with a smaller index than the default operator class.
        Index(
            "ix_jobs_payload_finished",
            "payload",
            postgresql_using="gin",
            postgresql_ops={"payload": "jsonb_path_ops"},
            postgresql_where=text(FINISHED_SQL),
        ),
    )


class Worker(Base):
    """A live worker or cron process, refreshed by its heartbeat.

    `lock_key` names the session advisory lock the process holds while its
    database session lives: a process that died is seen as dead at once,
    without waiting for its heartbeat to go stale.
    """

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'worker'"))
    hostname: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    #: The queues it claims from; NULL means every queue.
    queues: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    concurrency: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    #: The job names this process can run, so jobs nobody can run are noticed.
    job_names: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    lock_key: Mapped[int] = mapped_column(Integer, Identity(always=False), unique=True)
    #: NULL: the process holds its life lock (`lock_key`). Seconds: it has no
    #: session to hold one in (a transaction pooler) and counts as dead once
    #: its heartbeat is this old.
    lease: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    heartbeat_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))

    __table_args__ = (CheckConstraint("kind IN ('worker', 'cron')", name="kind"),)


class QueuePause(Base):
    """A paused queue: no worker anywhere claims from it until the row is deleted."""

    __tablename__ = "queue_pauses"

    queue: Mapped[str] = mapped_column(Text, primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: Who paused it, for the people wondering why nothing runs.
    paused_by: Mapped[str] = mapped_column(Text, server_default=text("''"))


class QueueLimit(Base):
    """Limits on one queue, across every worker: how many run at once, how fast they start.

    The rate is a token bucket: `rate` jobs per second on average, up to
    `burst` at once; `tokens` and `refilled_at` are its state, kept here so
    every worker draws from the same bucket.
    """

    __tablename__ = "queue_limits"

    queue: Mapped[str] = mapped_column(Text, primary_key=True)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    rate: Mapped[float | None] = mapped_column(Float)
    burst: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[float] = mapped_column(Float, server_default=text("0"))
    refilled_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    set_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: Who set the limits, for the people wondering why a queue is slow.
    set_by: Mapped[str] = mapped_column(Text, server_default=text("''"))

    __table_args__ = (
        CheckConstraint("concurrency >= 1", name="concurrency_positive"),
        CheckConstraint("rate > 0 AND burst >= 1", name="rate_positive"),
        CheckConstraint("(rate IS NULL) = (burst IS NULL)", name="rate_with_burst"),
        # Numbers a token bucket can use: Infinity and NaN pass `rate > 0`.
        CheckConstraint("rate <= 1000000", name="rate_finite"),
        CheckConstraint("burst <= 1000000", name="burst_bounded"),
        CheckConstraint("tokens BETWEEN -1e9 AND 1e9", name="tokens_finite"),
        CheckConstraint(f"refilled_at BETWEEN {_READABLE}", name="refilled_at_readable"),
    )


class JobTally(Base):
    """Finished jobs that were deleted (pruned or by hand), counted per queue and state.

    Metrics count finished jobs as rows still present plus these tallies, so
    their counters never go down when old rows are pruned.
    """

    __tablename__ = "job_tallies"

    queue: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class OperatorAction(Base):
    """Something a person did to jobs, queues or schedules: who, what, when, through what.

    Written in the transaction of the action itself, so the record and the
    change commit together or not at all. `job_id` has no foreign key: the
    record outlives a deleted or pruned job, and says who deleted it.
    """

    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: An admin's email on the dashboard, `user@host` on the command line.
    actor: Mapped[str] = mapped_column(Text)
    via: Mapped[str] = mapped_column(Text)
    #: A verb: retry, cancel, delete, enqueue, pause, resume, run, make-admin.
    action: Mapped[str] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    #: What was acted on when it is not one job: a queue, a schedule, an account, a filter.
    subject: Mapped[str] = mapped_column(Text, server_default=text("''"))
    #: What came of it, in words.
    detail: Mapped[str] = mapped_column(Text, server_default=text("''"))

    __table_args__ = (
        CheckConstraint("via IN ('dashboard', 'cli')", name="via"),
        # A job's page lists what was done to it.
        Index("ix_operator_actions_job_id", "job_id", postgresql_where=text("job_id IS NOT NULL")),
    )


class CronState(Base):
    """What cron has enqueued per schedule, so downtime never loses a run."""

    __tablename__ = "cron_state"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    #: The occurrence most recently enqueued (not the time of a loop tick).
    last_run_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: The definition `last_run_at` was counted on (`Grid.fingerprint`); NULL
    #: for rows written before it was kept, adopted by the next step.
    fingerprint: Mapped[str | None] = mapped_column(Text)
    #: When a cron process started without this schedule in its code; rows
    #: removed longer than CRON_ORPHAN_RETENTION_DAYS are pruned.
    removed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    #: Set while an operator has the schedule paused: due occurrences are
    #: skipped (and recorded), whatever the missed-run policy.
    paused_at: Mapped[datetime | None] = mapped_column(Timestamp)
    paused_by: Mapped[str | None] = mapped_column(Text)

    # Times every reader can convert, with room for the next occurrence of any
    # schedule after them: a last run at 'infinity' failed every step of the
    # schedule, and one in year 9999 every listing of it.
    __table_args__ = (
        CheckConstraint(f"last_run_at BETWEEN {_SCHEDULABLE}", name="last_run_at_readable"),
        *(
            CheckConstraint(
                f"{column} IS NULL OR {column} BETWEEN {_SCHEDULABLE}", name=f"{column}_readable"
            )
            for column in ("removed_at", "paused_at")
        ),
    )


class User(Base):
    """A person who signs in. Emails are stored lower-cased, so one address is one account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True)
    #: Werkzeug's salted hash (scrypt); the password itself is never stored.
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    #: May see and steer the queue at /admin; granted with `flask users make-admin`.
    is_admin: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: Copied into the session cookie at sign-in; bumped on sign-out and password
    #: change, which ends every session signed in before, wherever its cookie went.
    session_generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: When the holder followed the emailed confirmation link (or reset the password);
    #: until then the account cannot sign in, so sign-up never has to say an address is taken.
    confirmed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower"),)


class LoginAttempt(Base):
    """A failed sign-in, kept in the database so every web process counts the same failures."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))

    __table_args__ = (
        # The rate limit counts recent failures per address, newest first.
        Index("ix_login_attempts_email", "email", "attempted_at"),
        Index("ix_login_attempts_remote_addr", "remote_addr", "attempted_at"),
    )


class RateEvent(Base):
    """One counted action (an upload, a sign-up, a reset email) under a rate limit's key.

    Kept in the database, and counted under an advisory lock per key, so a
    limit holds exactly across every web process. A row counts until it
    expires; the hourly chore deletes expired rows.
    """

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    #: What is limited and for whom, e.g. `upload-user:7` or `signup-addr:203.0.113.5`.
    key: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        # A limit counts the unexpired events of one key; pruning reads by expiry.
        Index("ix_rate_events_key_expires_at", "key", "expires_at"),
        Index("ix_rate_events_expires_at", "expires_at"),
    )


class Export(Base):
    """A user's uploaded CSV and, once the worker has built it, its report.

    Files live in the database so a web process and a worker on different
    machines both reach them. The large columns are deferred: listing exports
    never loads them. Progress and failures are read from the build job.
    """

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(Text)
    row_count: Mapped[int] = mapped_column(Integer)
    column_count: Mapped[int] = mapped_column(Integer)
    upload: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    #: The `reports.build` job; no foreign key, since finished jobs are pruned first.
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    report_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    report_csv: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    #: Why the report could not be built, in words for the user.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        # "My exports, newest first" and pruning by age.
        Index("ix_exports_user_id", "user_id", "created_at"),
        Index("ix_exports_created_at", "created_at"),
    )


class CronEvent(Base):
    """What cron did about occurrences that were not on time: caught up or skipped.

    Written in the transaction that handles the occurrences, so the record
    and what happened can never disagree. Only gaps, overlaps and
    redefinitions are recorded; occurrences enqueued on time leave their
    trace in `jobs`. A `redefined` event spans the last occurrence of the old
    definition to where the new one starts.
    """

    __tablename__ = "cron_events"

    event_id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    #: How many occurrences, and the first and last of them.
    occurrences: Mapped[int] = mapped_column(Integer)
    first_occurrence: Mapped[datetime] = mapped_column(Timestamp)
    last_occurrence: Mapped[datetime] = mapped_column(Timestamp)
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("kind IN ('caught_up', 'skipped', 'redefined')", name="kind"),
        # A redefinition counts no occurrences: it starts the new definition from now.
        CheckConstraint(
            "occurrences >= 1 OR (kind = 'redefined' AND occurrences = 0)",
            name="occurrences_positive",
        ),
        # The dashboard reads one schedule's newest events.
        Index("ix_cron_events_name_recorded_at", "name", "recorded_at"),
    )
