"""name index at rest: running jobs leave the job-name index

Revision ID: 0015_name_index_at_rest
Revises: 0014_confirm_address
Create Date: 2026-12-01 08:00:00

A claim turns a queued row into a running one; `state` is in partial
indexes' predicates, so the update is never HOT and the new row version
gets an entry in every index whose predicate it meets. Left out of
`ix_jobs_name_newest`, a claim no longer adds one there (about 100 of the
~500 bytes of WAL a claimed row writes). Running jobs are few and are read
by name through `ix_jobs_running`.

The new index is built CONCURRENTLY under a scratch name, outside the
migration's transaction, so enqueues, claims and completions go on while it
is built; the old one is then dropped CONCURRENTLY and the new one renamed
(a rename takes only a brief lock on the index). A build that was
interrupted leaves an invalid index behind, which the next run drops first.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_name_index_at_rest"
down_revision: str | None = "0014_confirm_address"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _replace(predicate: str) -> None:
    where = f" WHERE {predicate}" if predicate else ""
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_name_newest_next")
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_jobs_name_newest_next"
            f" ON jobs (name, job_id DESC){where}"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_name_newest")
    op.execute("ALTER INDEX ix_jobs_name_newest_next RENAME TO ix_jobs_name_newest")


def upgrade() -> None:
    _replace("state <> 'running'")


def downgrade() -> None:
    _replace("")
