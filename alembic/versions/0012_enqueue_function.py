"""enqueue function: one job in one prepared round trip, inside a subtransaction

Revision ID: 0012_enqueue_function
Revises: 0011_scale
Create Date: 2026-11-30 11:15:00

`pillars_enqueue(...)` inserts one job and returns NULL, or returns the
refusal (SQLSTATE, a tab, the message) instead of raising it. Its
exception block runs the INSERT in a subtransaction, so a refusal leaves
the caller's transaction usable, as a SAVEPOINT would; but the call is one
statement that psycopg prepares and PostgreSQL plans once per session,
where SAVEPOINT + INSERT + RELEASE cost either three round trips or a
simple query parsed and planned on every call. `query_canceled` (a
statement timeout) is caught too: WHEN OTHERS leaves it out.

Creating a function takes no lock on `jobs`: safe while the queue flows.
A migration that changes the INSERT's columns must replace the function.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012_enqueue_function'
down_revision: str | None = '0011_scale'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
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
            -- A job with a flow key waits for the promoter to let it in.
            CASE WHEN p_flow_key IS NULL THEN 'queued' ELSE 'waiting' END,
            p_flow_key, p_flow_limit, p_flow_kind, p_flow_key IS NOT NULL);
    RETURN NULL;
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RETURN SQLSTATE || E'\\t' || SQLERRM;
END
$$
""")


def downgrade() -> None:
    op.execute("DROP FUNCTION pillars_enqueue")
