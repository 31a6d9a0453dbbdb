"""unique while waiting: a job waiting for its flow key holds its unique key too

Revision ID: 0018_unique_while_waiting
Revises: 0017_readable_times
Create Date: 2026-12-02 18:10:00

`uq_jobs_unique_key` covered queued and running jobs only, so a job waiting
for its flow key (concurrency or ordering) did not hold its unique key:
enqueueing the same key twice, or two operators retrying two failed jobs
of one key at once, left two waiting jobs of one key. The promoter then
tried to let both in and the index refused it, failing every promotion in
its batch, every time. The index now covers waiting jobs as enqueue's docs
always said ("a live (waiting, queued or running) job").

Safe beside a running queue, every step repeatable: in an autocommit block,
waiting duplicates are cancelled (the oldest live job of each key stays:
ids made in one millisecond are in random order, so age is `created_at`),
the new index is built CONCURRENTLY under another name (a build left
invalid by an interruption, or by a duplicate enqueued meanwhile, is
dropped and built again by the next run), then swapped in.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_unique_while_waiting"
down_revision: str | None = "0017_readable_times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "('waiting', 'queued', 'running')"
DUPLICATE = "a second live job of its unique key: cancelled by migration 0018"


def _build(name: str, states: str) -> None:
    op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    op.execute(
        f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON jobs (unique_key)"
        f" WHERE unique_key IS NOT NULL AND state IN {states}"
    )


def _swap(new: str) -> None:
    op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_jobs_unique_key")
    op.execute(f"ALTER INDEX {new} RENAME TO uq_jobs_unique_key")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # Only waiting jobs can be duplicates: the old index held the others.
        op.execute(
            f"UPDATE jobs AS d SET state = 'cancelled', finished_at = now(),"
            f" flow_fresh = false, last_error = '{DUPLICATE}'"
            " WHERE d.state = 'waiting' AND d.unique_key IS NOT NULL"
            "   AND EXISTS (SELECT 1 FROM jobs o WHERE o.unique_key = d.unique_key"
            f"               AND o.state IN {LIVE}"
            "               AND (o.state <> 'waiting'"
            "                    OR (o.created_at, o.job_id) < (d.created_at, d.job_id)))"
        )
        _build("uq_jobs_unique_key_live", LIVE)
        _swap("uq_jobs_unique_key_live")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _build("uq_jobs_unique_key_active", "('queued', 'running')")
        _swap("uq_jobs_unique_key_active")
