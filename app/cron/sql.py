"""Cron's statements over `cron_state` and `cron_events` (and one read of `jobs`).

Statements that change `jobs` or `workers` stay in `app.jobs.sql`; cron
reaches them through `app.jobs.enqueue` and `app.jobs.claims`.
"""

from __future__ import annotations

from sqlalchemy import text

#: The one clock: the start of the current transaction, on the database server.
NOW = text("SELECT now()")

# Whoever holds this row lock owns the schedule's next step; peers skip it
# instead of queueing behind it, and look again on their next tick. Reading
# under the lock also returns the newest committed last_run_at, so a peer
# that just enqueued an occurrence is seen, never repeated.
LOCK_STATE = text("""
SELECT last_run_at FROM cron_state WHERE name = :name
FOR UPDATE SKIP LOCKED
""")

# A row we could not lock may exist (a peer holds it) or not (first sight).
# A plain read answers without waiting; an INSERT would queue behind the peer.
STATE_EXISTS = text("SELECT EXISTS (SELECT 1 FROM cron_state WHERE name = :name)")

# First sight of a schedule: it starts from now (no flood of past runs).
# DO NOTHING: a peer may have created the row a moment earlier; it wins.
START_STATE = text("""
INSERT INTO cron_state (name, last_run_at) VALUES (:name, :last_run_at)
ON CONFLICT (name) DO NOTHING
RETURNING name
""")

# greatest(): last_run_at only ever moves forward, whatever a caller passes.
ADVANCE_STATE = text("""
UPDATE cron_state SET last_run_at = greatest(last_run_at, :last_run_at), updated_at = now()
WHERE name = :name
""")

READ_STATES = text("SELECT name, last_run_at FROM cron_state")

# Served by uq_jobs_cron_occurrence, whose leading column is cron_name.
LIVE_JOB = text("""
SELECT EXISTS (
    SELECT 1 FROM jobs WHERE cron_name = :name AND state IN ('queued', 'running')
)
""")

RECORD_EVENT = text("""
INSERT INTO cron_events (name, kind, occurrences, first_occurrence, last_occurrence, reason)
VALUES (:name, :kind, :occurrences, :first_occurrence, :last_occurrence, :reason)
""")

# A long-running job makes an every-minute schedule skip once a minute: extend
# the newest event when it says the same thing, rather than add a row per skip.
# Safe without a lock of its own: the caller holds the schedule's state row.
EXTEND_EVENT = text("""
UPDATE cron_events
SET occurrences = occurrences + :occurrences, last_occurrence = :last_occurrence,
    recorded_at = now()
WHERE event_id = (
    SELECT event_id FROM cron_events WHERE name = :name ORDER BY event_id DESC LIMIT 1
) AND kind = :kind AND reason = :reason
RETURNING event_id
""")
