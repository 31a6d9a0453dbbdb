"""queue guards: values a worker cannot convert are refused by the table

Revision ID: 0005_queue_guards
Revises: 0004_ops
Create Date: 2026-11-30 07:00:00

Safe beside a running queue. The migration's transaction only changes the
catalog (a nullable column, constraints added NOT VALID), so its lock on
`jobs` lasts milliseconds. Everything that reads the whole table runs after
it, in an autocommit block, under locks that let enqueues and claims go on:
the rows that already carry an unreadable time are mended with row locks
(run at once, or lose an unreadable occurrence time), the constraints are
validated under SHARE UPDATE EXCLUSIVE, and the rescuer's index is rebuilt
concurrently under a new name before the old one goes. Every step can run
again, so a release step stopped half-way can simply be repeated.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0005_queue_guards'
down_revision: str | None = '0004_ops'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READABLE = "'0001-01-02 00:00+00' AND '9999-12-30 00:00+00'"
CHECKS = {
    "ck_jobs_run_at_readable": f"run_at BETWEEN {READABLE}",
    "ck_jobs_scheduled_for_readable": f"scheduled_for IS NULL OR scheduled_for BETWEEN {READABLE}",
}


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS scheduled_zone text")
    for name, check in CHECKS.items():
        op.execute(f"ALTER TABLE jobs DROP CONSTRAINT IF EXISTS {name}")
        op.execute(f"ALTER TABLE jobs ADD CONSTRAINT {name} CHECK ({check}) NOT VALID")
    with op.get_context().autocommit_block():
        op.execute(f"UPDATE jobs SET run_at = now() WHERE NOT run_at BETWEEN {READABLE}")
        op.execute(
            f"UPDATE jobs SET scheduled_for = NULL WHERE NOT scheduled_for BETWEEN {READABLE}"
        )
        for name in CHECKS:
            op.execute(f"ALTER TABLE jobs VALIDATE CONSTRAINT {name}")
        # A leftover of an interrupted run may be invalid: build it afresh.
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_running_by_worker")
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_jobs_running_by_worker ON jobs (locked_by)"
            " WHERE state = 'running'"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_running")
        op.execute("ALTER INDEX ix_jobs_running_by_worker RENAME TO ix_jobs_running")


def downgrade() -> None:
    op.drop_index('ix_jobs_running', table_name='jobs', postgresql_where=sa.text("state = 'running'"))
    op.create_index('ix_jobs_running', 'jobs', ['heartbeat_at'], unique=False, postgresql_where=sa.text("state = 'running'"))
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_scheduled_for_readable")
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_run_at_readable")
    op.drop_column('jobs', 'scheduled_zone')
