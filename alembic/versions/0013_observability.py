"""observability: where a job came from, and the trace it belongs to

Revision ID: 0013_observability
Revises: 0012_enqueue_function
Create Date: 2026-11-30 11:00:00

`jobs.origin` (the request route, cron occurrence or parent job that
enqueued it), `jobs.request_id` (the request's id, carried on by jobs that
enqueue jobs) and `jobs.trace_context` (W3C `traceparent`/`tracestate`).
Nullable columns without defaults: catalog changes only, under a lock held
for milliseconds (alembic/env.py bounds the wait for it). The empty
0009_observability stays as it is: databases have passed through it.

`pillars_enqueue` (0012_enqueue_function) is replaced by one that writes
the three columns too; the old one is dropped (a new argument list is a
new function). No lock on `jobs` for either.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0013_observability"
down_revision: str | None = "0012_enqueue_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("origin", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("request_id", sa.Text(), nullable=True))
    op.add_column(
        "jobs", sa.Column("trace_context", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.execute(_ENQUEUE_FUNCTION)
    op.execute(f"DROP FUNCTION pillars_enqueue({_OLD_ARGUMENTS})")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION pillars_enqueue({_OLD_ARGUMENTS}, text, text, jsonb)")
    op.execute(_OLD_ENQUEUE_FUNCTION)
    op.drop_column("jobs", "trace_context")
    op.drop_column("jobs", "request_id")
    op.drop_column("jobs", "origin")


_OLD_ARGUMENTS = (
    "uuid, text, jsonb, text, integer, timestamptz, double precision, integer, text, text, "
    "text, timestamptz, text, text, integer, text"
)

_ENQUEUE_FUNCTION = """
CREATE FUNCTION pillars_enqueue(
    p_job_id uuid, p_name text, p_payload jsonb, p_queue text, p_priority integer,
    p_run_at timestamptz, p_delay double precision, p_max_attempts integer,
    p_unique_key text, p_context text, p_cron_name text, p_scheduled_for timestamptz,
    p_scheduled_zone text, p_flow_key text, p_flow_limit integer, p_flow_kind text,
    p_origin text, p_request_id text, p_trace_context jsonb
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (job_id, name, payload, queue, priority, run_at, max_attempts,
                      unique_key, context, cron_name, scheduled_for, scheduled_zone,
                      state, flow_key, flow_limit, flow_kind, flow_fresh,
                      origin, request_id, trace_context)
    VALUES (p_job_id, p_name, p_payload, p_queue, p_priority,
            coalesce(p_run_at, now() + make_interval(secs => p_delay)),
            p_max_attempts, p_unique_key, p_context, p_cron_name, p_scheduled_for,
            p_scheduled_zone,
            -- A job with a flow key waits for the promoter to let it in.
            CASE WHEN p_flow_key IS NULL THEN 'queued' ELSE 'waiting' END,
            p_flow_key, p_flow_limit, p_flow_kind, p_flow_key IS NOT NULL,
            p_origin, p_request_id, p_trace_context);
    RETURN NULL;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RETURN SQLSTATE || E'\\t' || SQLERRM;
END
$$
"""

# As 0012_enqueue_function made it, for the downgrade.
_OLD_ENQUEUE_FUNCTION = """
CREATE FUNCTION pillars_enqueue(
    p_job_id uuid, p_name text, p_payload jsonb, p_queue text, p_priority integer,
    p_run_at timestamptz, p_delay double precision, p_max_attempts integer,
    p_unique_key text, p_context text, p_cron_name text, p_scheduled_for timestamptz,
    p_scheduled_zone text, p_flow_key text, p_flow_limit integer, p_flow_kind text
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (job_id, name, payload, queue, priority, run_at, max_attempts,
                      unique_key, context, cron_name, scheduled_for, scheduled_zone,
                      state, flow_key, flow_limit, flow_kind, flow_fresh)
    VALUES (p_job_id, p_name, p_payload, p_queue, p_priority,
            coalesce(p_run_at, now() + make_interval(secs => p_delay)),
            p_max_attempts, p_unique_key, p_context, p_cron_name, p_scheduled_for,
            p_scheduled_zone,
            CASE WHEN p_flow_key IS NULL THEN 'queued' ELSE 'waiting' END,
            p_flow_key, p_flow_limit, p_flow_kind, p_flow_key IS NOT NULL);
    RETURN NULL;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RETURN SQLSTATE || E'\\t' || SQLERRM;
END
$$
"""
