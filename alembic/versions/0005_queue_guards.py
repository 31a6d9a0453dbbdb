"""queue guards: values a worker cannot convert are refused by the table

Revision ID: 0005_queue_guards
Revises: 0004_ops
Create Date: 2026-11-30 07:00:00

Rows that already carry such a time are mended first (run at once, or lose an
unreadable occurrence time), so the constraints can be validated. They are
added NOT VALID and validated separately: validation then takes only a
SHARE UPDATE EXCLUSIVE lock, and enqueues and claims keep flowing while it
scans the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0005_queue_guards'
down_revision: str | None = '0004_ops'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READABLE = "'0001-01-02 00:00+00' AND '9999-12-30 00:00+00'"


def upgrade() -> None:
    op.add_column('jobs', sa.Column('scheduled_zone', sa.Text(), nullable=True))
    op.execute(f"UPDATE jobs SET run_at = now() WHERE NOT run_at BETWEEN {READABLE}")
    op.execute(
        f"UPDATE jobs SET scheduled_for = NULL WHERE NOT scheduled_for BETWEEN {READABLE}"
    )
    op.execute(
        f"ALTER TABLE jobs ADD CONSTRAINT ck_jobs_run_at_readable "
        f"CHECK (run_at BETWEEN {READABLE}) NOT VALID"
    )
    op.execute(
        f"ALTER TABLE jobs ADD CONSTRAINT ck_jobs_scheduled_for_readable "
        f"CHECK (scheduled_for IS NULL OR scheduled_for BETWEEN {READABLE}) NOT VALID"
    )
    op.execute("ALTER TABLE jobs VALIDATE CONSTRAINT ck_jobs_run_at_readable")
    op.execute("ALTER TABLE jobs VALIDATE CONSTRAINT ck_jobs_scheduled_for_readable")
    op.drop_index('ix_jobs_running', table_name='jobs', postgresql_where=sa.text("state = 'running'"))
    op.create_index('ix_jobs_running', 'jobs', ['locked_by'], unique=False, postgresql_where=sa.text("state = 'running'"))


def downgrade() -> None:
    op.drop_index('ix_jobs_running', table_name='jobs', postgresql_where=sa.text("state = 'running'"))
    op.create_index('ix_jobs_running', 'jobs', ['heartbeat_at'], unique=False, postgresql_where=sa.text("state = 'running'"))
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_scheduled_for_readable")
    op.execute("ALTER TABLE jobs DROP CONSTRAINT ck_jobs_run_at_readable")
    op.drop_column('jobs', 'scheduled_zone')
