"""Cron's statements over `cron_state` and `cron_events` (and one read of `jobs`).

Statements that change `jobs` or `workers` stay in `app.jobs.sql`; cron
reaches them through `app.jobs.enqueue` and `app.jobs.claims`.
"""

from __future__ import annotations

from sqlalchemy import text

#: The one clock: the start of the current transaction, on the database server.
NOW = text("SELECT now()")

# A step holds its schedule's row lock for milliseconds. Bound it, so that a
# process that hangs or is frozen inside one (SIGSTOP, a stuck handler of a
# payload, a swapped-out VM) cannot keep the schedule from its peers: the
# server ends its session after `idle`, releasing the lock, and the next peer
# takes the schedule over within seconds. `lock` bounds a wait on a peer's
# uncommitted job for the same occurrence; `statement` any single statement.
# `true`: local to this transaction, so pooled connections keep their settings.
BOUND_STEP = text("""
SELECT set_config('lock_timeout', :lock, true),
       set_config('statement_timeout', :statement, true),
       set_config('idle_in_transaction_session_timeout', :idle, true)
""")

# Whoever holds this row lock owns the schedule's next step; peers skip it
# instead of queueing behind it, and look again on their next tick. Reading
# under the lock also returns the newest committed last_run_at, so a peer
# that just enqueued an occurrence is seen, never repeated.
LOCK_STATE = text("""
SELECT last_run_at, fingerprint, removed_at, paused_at, paused_by FROM cron_state
WHERE name = :name
FOR UPDATE SKIP LOCKED
""")

# A row we could not lock may exist (a peer holds it) or not (first sight).
# A plain read answers without waiting; an INSERT would queue behind the peer.
STATE_EXISTS = text("SELECT EXISTS (SELECT 1 FROM cron_state WHERE name = :name)")

# First sight of a schedule: it starts from now (no flood of past runs).
# DO NOTHING: a peer may have created the row a moment earlier; it wins.
START_STATE = text("""
INSERT INTO cron_state (name, last_run_at, fingerprint)
VALUES (:name, :last_run_at, :fingerprint)
ON CONFLICT (name) DO NOTHING
RETURNING name
""")

# A new definition (or a schedule back in code after its removal) starts from
# now: last_run_at is set, not advanced, since the old grid's occurrences say
# nothing about the new one's. The caller holds the row lock.
RESTART_STATE = text("""
UPDATE cron_state
SET last_run_at = :last_run_at, fingerprint = :fingerprint, removed_at = NULL, updated_at = now()
WHERE name = :name
""")

# Rows written before definitions were kept: take the running one as theirs.
ADOPT_STATE = text("UPDATE cron_state SET fingerprint = :fingerprint WHERE name = :name")

# greatest(): last_run_at only ever moves forward, whatever a caller passes.
ADVANCE_STATE = text("""
UPDATE cron_state SET last_run_at = greatest(last_run_at, :last_run_at), updated_at = now()
WHERE name = :name
""")

READ_STATES = text("""
SELECT name, last_run_at, fingerprint, removed_at, paused_at, paused_by FROM cron_state
""")

# An operator's pause or resume waits for a step in progress (milliseconds)
# rather than skipping it: the change must land.
LOCK_STATE_WAIT = text("""
SELECT last_run_at, fingerprint, paused_at, paused_by FROM cron_state WHERE name = :name
FOR UPDATE
""")

PAUSE_STATE = text("""
UPDATE cron_state SET paused_at = now(), paused_by = :paused_by WHERE name = :name
""")

RESUME_STATE = text("""
UPDATE cron_state SET paused_at = NULL, paused_by = NULL WHERE name = :name
""")

# Each schedule's newest jobs, for the cron page: one backward scan of
# uq_jobs_cron_occurrence (cron_name, scheduled_for) per schedule.
RECENT_JOBS = text("""
SELECT s.name, j.job_id, j.state, j.scheduled_for, j.finished_at, j.last_error
FROM unnest(CAST(:names AS text[])) AS s (name)
CROSS JOIN LATERAL (
    SELECT job_id, state, scheduled_for, finished_at, last_error FROM jobs
    WHERE cron_name = s.name
    ORDER BY scheduled_for DESC
    LIMIT :per_schedule
) AS j
ORDER BY s.name, j.scheduled_for DESC
""")

# A process that starts without a schedule in its code marks its state as
# removed (once: the first process to notice sets the time). Rows a peer is
# stepping right now are skipped, not waited for; the next start sees them.
MARK_REMOVED = text("""
UPDATE cron_state SET removed_at = now()
WHERE name IN (
    SELECT name FROM cron_state
    WHERE removed_at IS NULL AND name <> ALL(:names)
    FOR UPDATE SKIP LOCKED
)
RETURNING name
""")

# Forget schedules removed for longer than the retention, with their events.
# Never one this process still has in code.
PRUNE_REMOVED = text("""
WITH pruned AS (
    DELETE FROM cron_state
    WHERE removed_at < now() - make_interval(secs => :retention) AND name <> ALL(:names)
    RETURNING name
), events AS (
    DELETE FROM cron_events WHERE name IN (SELECT name FROM pruned)
)
SELECT name FROM pruned
""")

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

# A long-running job makes an every-minute schedule skip once a minute, and a
# paused one skips every occurrence: extend the newest event when it says the
# same thing, rather than add a row per skip.
# Safe without a lock of its own: the caller holds the schedule's state row.
EXTEND_EVENT = text("""
UPDATE cron_events
SET occurrences = least(CAST(occurrences AS bigint) + :occurrences, 2147483647),
    last_occurrence = :last_occurrence,
    recorded_at = now()
WHERE event_id = (
    SELECT event_id FROM cron_events WHERE name = :name ORDER BY event_id DESC LIMIT 1
) AND kind = :kind AND reason = :reason
RETURNING event_id
""")
