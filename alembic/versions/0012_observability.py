"""observability: where a job came from, and the trace it belongs to

Revision ID: 0012_observability
Revises: 0011_scale
Create Date: 2026-11-30 11:00:00

`jobs.origin` (the request route, cron occurrence or parent job that
enqueued it), `jobs.request_id` (the request's id, carried on by jobs that
enqueue jobs) and `jobs.trace_context` (W3C `traceparent`/`tracestate`).
Nullable columns without defaults: catalog changes only, under a lock held
for milliseconds (alembic/env.py bounds the wait for it). The empty
0009_observability stays as it is: databases have passed through it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0012_observability"
down_revision: str | None = "0011_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("origin", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("request_id", sa.Text(), nullable=True))
    op.add_column(
        "jobs", sa.Column("trace_context", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("jobs", "trace_context")
    op.drop_column("jobs", "request_id")
    op.drop_column("jobs", "origin")
