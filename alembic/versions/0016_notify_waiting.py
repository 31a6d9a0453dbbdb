"""notify waiting: a job inserted to wait for its key wakes the workers too

Revision ID: 0016_notify_waiting
Revises: 0015_name_index_at_rest
Create Date: 2026-12-01 11:40:00

A job with a concurrency or ordering key is inserted `waiting` and fresh,
for a worker's promoter to let in. The insert trigger sent NOTIFY only for
`queued` rows, so an idle worker learnt of such a job at its next poll
(WORKER_POLL_INTERVAL, 1 s by default): half a second late on average.
Now a fresh waiting row notifies its queue as a queued one does; the woken
worker's cycle reports it and the promoter runs at once.

CREATE OR REPLACE FUNCTION swaps the body atomically and takes no lock on
`jobs`: enqueues go on throughout.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_notify_waiting"
down_revision: str | None = "0015_name_index_at_rest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFY = """
CREATE OR REPLACE FUNCTION pillars_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pillars_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE {states}) AS q;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(_NOTIFY.format(states="state = 'queued' OR (state = 'waiting' AND flow_fresh)"))


def downgrade() -> None:
    op.execute(_NOTIFY.format(states="state = 'queued'"))
