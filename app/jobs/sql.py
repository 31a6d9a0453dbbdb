"""Every statement that changes the jobs and workers tables, in one place.

Each statement states its own guarantees in comments. Two rules hold
throughout:

* **Fencing.** A worker may change a claimed job only while `state` is
  `running`, `locked_by` is itself and `attempts` is the attempt it claimed.
  A worker that froze and lost its claim therefore changes nothing when it
  comes back, even if the job was reclaimed by the same process name.
* **One clock.** Every time is the database's `now()`, never a process's.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from app.db import Raw
from app.models import FINISHED_SQL

#: Namespace of the session advisory locks that prove a process is alive
#: (first key of `pg_advisory_lock(int, int)`; the second is `workers.lock_key`).
LOCK_NAMESPACE = 0x50_494C  # "PIL"


# Never commits: the caller's transaction decides whether the job exists.
_ENQUEUE = """
INSERT INTO jobs (job_id, name, payload, queue, priority, run_at, max_attempts,
                  unique_key, context, cron_name, scheduled_for, scheduled_zone,
                  state, flow_key, flow_limit, flow_kind, flow_fresh,
                  origin, request_id, trace_context)
VALUES (:job_id, :name, CAST(:payload AS jsonb), :queue, :priority,
        coalesce(CAST(:run_at AS timestamptz),
                 now() + make_interval(secs => CAST(:delay AS double precision))),
        :max_attempts, :unique_key, :context, :cron_name, CAST(:scheduled_for AS timestamptz),
        :scheduled_zone,
        -- A job with a flow key waits for the promoter to let it in (see flow below).
        CASE WHEN CAST(:flow_key AS text) IS NULL THEN 'queued' ELSE 'waiting' END,
        :flow_key, :flow_limit, :flow_kind, CAST(:flow_key AS text) IS NOT NULL,
        :origin, :request_id, CAST(:trace_context AS jsonb))
{on_conflict}
RETURNING job_id
"""
ENQUEUE = text(_ENQUEUE.format(on_conflict=""))


def for_driver(statement: TextClause) -> str:
    """`statement` in psycopg's own parameter style, to run on the driver connection."""
    return str(statement.compile(dialect=psycopg_dialect()))  # type: ignore[no-untyped-call]


# The common enqueue, in one round trip: `pillars_enqueue` (migration
# 0012_enqueue_function) is `_ENQUEUE` in a subtransaction that returns a
# refusal ("SQLSTATE<tab>message") rather than raising it, so the caller's
# transaction stays usable. One prepared statement, planned once per session.
ENQUEUE_CALL = """
SELECT pillars_enqueue(
    %(job_id)s, %(name)s, CAST(%(payload)s AS jsonb), %(queue)s, CAST(%(priority)s AS integer),
    CAST(%(run_at)s AS timestamptz), CAST(%(delay)s AS double precision),
    CAST(%(max_attempts)s AS integer), CAST(%(unique_key)s AS text), %(context)s,
    CAST(%(cron_name)s AS text), CAST(%(scheduled_for)s AS timestamptz),
    CAST(%(scheduled_zone)s AS text), CAST(%(flow_key)s AS text),
    CAST(%(flow_limit)s AS integer), CAST(%(flow_kind)s AS text),
    CAST(%(origin)s AS text), CAST(%(request_id)s AS text), CAST(%(trace_context)s AS jsonb))
"""
# ON CONFLICT DO NOTHING without a target covers both partial unique indexes:
# a live job with the same unique_key, and a second job for one cron occurrence.
# The caller then looks the existing job up. Only used when a key is given:
# the speculative insertion it needs costs every other enqueue for nothing.
ENQUEUE_UNIQUE = text(_ENQUEUE.format(on_conflict="ON CONFLICT DO NOTHING"))

FIND_LIVE_BY_UNIQUE_KEY = text("""
SELECT job_id FROM jobs
WHERE unique_key = :unique_key AND state IN ('waiting', 'queued', 'running')
""")

FIND_OCCURRENCE = text("""
SELECT job_id FROM jobs WHERE cron_name = :cron_name AND scheduled_for = :scheduled_for
""")

# One statement for the whole batch: the rows travel as one JSON array, which
# costs the client a single C-accelerated json.dumps (binding nine arrays of
# a thousand elements each costs several times more).
ENQUEUE_MANY = text("""
INSERT INTO jobs (job_id, name, payload, queue, priority, run_at, max_attempts, unique_key,
                  context, state, flow_key, flow_limit, flow_kind, flow_fresh,
                  origin, request_id, trace_context)
SELECT r.job_id, r.name, r.payload, r.queue, r.priority,
       coalesce(r.run_at, now() + make_interval(secs => r.delay)),
       r.max_attempts, r.unique_key, r.context,
       CASE WHEN r.flow_key IS NULL THEN 'queued' ELSE 'waiting' END,
       r.flow_key, r.flow_limit, r.flow_kind, r.flow_key IS NOT NULL,
       r.origin, r.request_id, CAST(r.trace_context AS jsonb)
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(job_id uuid, name text, payload jsonb, queue text, priority integer,
          run_at timestamptz, delay double precision, max_attempts integer,
          unique_key text, context text, flow_key text, flow_limit integer, flow_kind text,
          origin text, request_id text, trace_context text)
ON CONFLICT DO NOTHING
RETURNING job_id
""")
ENQUEUE_MANY_DRIVER = for_driver(ENQUEUE_MANY)

# A large batch that needs nothing computed by the database but its defaults
# (run_at = now(), so every job is due by the database's clock) goes by COPY.
# Insert triggers fire for COPY too: workers are woken as after an INSERT.
ENQUEUE_COPY = """
COPY jobs (job_id, name, payload, queue, priority, max_attempts, context, state,
           flow_key, flow_limit, flow_kind, flow_fresh, origin, request_id, trace_context)
FROM STDIN
"""


def _fence(ids: str) -> str:
    """The fence (see module docstring), for statements joined to a batch `d` whose
    job ids are the parameter `ids`.

    `IS NOT DISTINCT FROM` means `=` here (neither side is ever NULL) but keeps
    the planner off ix_jobs_running, which it would otherwise pick from an
    estimate of one running job: it then scans every running job and unnests
    the whole batch again for each (quadratic: 16 ms for a batch of 180).
    `job_id = ANY(ids)` bounds the jobs side by the batch whichever way the
    join goes: a plan made on an empty table (the loop's generic plan, kept
    until autovacuum analyzes) may otherwise put the jobs side first and read
    every row of pk_jobs at each cycle, even with an empty batch.
    """
    return f"""
j.job_id = ANY(CAST(:{ids} AS uuid[])) AND j.job_id = d.job_id AND j.attempts = d.attempt
AND j.locked_by IS NOT DISTINCT FROM :worker_id AND j.state IS NOT DISTINCT FROM 'running'
"""


#: A job that used its last attempt; a failure then ends it.
_LAST_ATTEMPT = "j.attempts >= j.max_attempts"


def _ended(final: str, retry_at: str | None) -> str:
    """The SET clauses of an attempt that failed or was lost: when `final` holds the job
    ends `failed` (keeping who held it last), otherwise it goes back to the queue, to run
    at `retry_at` (None: keeping its place)."""
    run_at = (
        ""
        if retry_at is None
        else f"run_at = CASE WHEN {final} THEN j.run_at ELSE {retry_at} END,\n    "
    )
    return f"""state = CASE WHEN {final} THEN 'failed' ELSE 'queued' END, {run_at}
    finished_at = CASE WHEN {final} THEN now() END,
    locked_by = CASE WHEN {final} THEN j.locked_by END,
    locked_at = CASE WHEN {final} THEN j.locked_at END"""


_COMPLETE = f"""
UPDATE jobs AS j
SET state = 'succeeded', finished_at = now(), heartbeat_at = NULL,
    result = CAST(d.result AS jsonb),
    progress = CASE WHEN j.progress IS NULL THEN NULL ELSE 1.0 END
FROM unnest(CAST(:done_ids AS uuid[]), CAST(:done_attempts AS integer[]),
            CAST(:results AS text[]))
     AS d(job_id, attempt, result)
WHERE {_fence("done_ids")}
RETURNING j.job_id, j.state, j.flow_key, j.flow_kind
"""

# A failed attempt goes back to the queue after its backoff, unless it was the
# last allowed attempt or the handler discarded it: then it ends `failed`.
# Every attempt's error is kept in `errors`; `last_error` has the newest.
_FAIL = f"""
UPDATE jobs AS j
SET {_ended("d.discard OR " + _LAST_ATTEMPT, "now() + make_interval(secs => d.delay)")},
    heartbeat_at = NULL,
    last_error = d.message || coalesce(E'\\n\\n' || d.traceback, ''),
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', now(), 'worker', CAST(:worker_id AS text),
        'error', d.message, 'traceback', d.traceback))
FROM unnest(CAST(:failed_ids AS uuid[]), CAST(:failed_attempts AS integer[]),
            CAST(:messages AS text[]), CAST(:tracebacks AS text[]),
            CAST(:delays AS double precision[]), CAST(:discards AS boolean[]))
     AS d(job_id, attempt, message, traceback, delay, discard)
WHERE {_fence("failed_ids")}
RETURNING j.job_id, j.state, j.flow_key, j.flow_kind
"""

# -- flow control --------------------------------------------------------------
#
# A job with a flow key counts against its key's limit while it is *active*:
# queued (let in), running, or, for an ordering key that blocks, failed. Jobs
# beyond the limit wait in state 'waiting', out of every claim's sight, so
# claims stay plain index scans and cost nothing extra. Only the promoter
# moves a job from waiting to queued (PROMOTE), one key at a time under a
# lock, so a key never has more than its limit of active jobs. Whenever a
# job leaves the active set, the same statement marks its key's next waiting
# job *fresh*; workers run the promoter when they see a fresh job.

#: A job is active for its key in these states (see ix_jobs_flow_active).
ACTIVE = (
    "(j.state IN ('queued', 'running') OR (j.state = 'failed' AND j.flow_kind = 'ordering_block'))"
)


def _freshen(keys: str, leaving: str | None = None) -> str:
    """A CTE body that marks the next waiting job of each flow key in `keys` fresh.

    `keys` is a query returning `flow_key` for jobs that just left the
    active set; NULL keys are ignored. `leaving` returns the `job_id`s the
    same statement takes out of the line (a cancelled or deleted waiting
    job): in its snapshot they are still waiting, and marking one of them
    would leave the job behind it unmarked, waiting for good.
    """
    skip = f"AND w.job_id NOT IN ({leaving})" if leaving else ""
    return f"""
    UPDATE jobs AS h SET flow_fresh = true
    WHERE h.job_id IN (
        SELECT (SELECT w.job_id FROM jobs w
                WHERE w.state = 'waiting' AND w.flow_key = k.flow_key {skip}
                ORDER BY w.priority DESC, w.job_id LIMIT 1)
        FROM (SELECT DISTINCT flow_key FROM ({keys}) AS left_active
              WHERE flow_key IS NOT NULL) AS k
    )
    RETURNING h.job_id
"""


#: The cycle's result columns. A saved outcome fills `job_id` and `state`; a
#: claim fills all of them, in types that cannot fail to convert whatever a
#: row holds (the worker decodes payload and occurrence itself, row by row:
#: one unreadable row must fail alone, not strand its whole batch).
CYCLE_COLUMNS: dict[str, tuple[str, str]] = {
    # column: (SQL type, what a claim returns)
    "job_id": ("uuid", "j.job_id"),
    "state": ("text", "j.state"),
    "name": ("text", "j.name"),
    "payload": ("text", "CAST(j.payload AS text)"),
    "queue": ("text", "j.queue"),
    "attempts": ("integer", "j.attempts"),
    "max_attempts": ("integer", "j.max_attempts"),
    "scheduled_for": ("text", "CAST(extract(epoch FROM j.scheduled_for) AS text)"),
    "scheduled_zone": ("text", "j.scheduled_zone"),
    "priority": ("integer", "j.priority"),
    # Seconds from due to claimed: the queue wait the worker logs and traces.
    "waited": (
        "double precision",
        "CAST(extract(epoch FROM j.started_at - j.run_at) AS double precision)",
    ),
    # Seconds from enqueued to claimed: a late start begins a trace of its own.
    "age": (
        "double precision",
        "CAST(extract(epoch FROM j.started_at - j.created_at) AS double precision)",
    ),
    # Where it came from, to carry on in the job's log lines and trace.
    "request_id": ("text", "j.request_id"),
    "trace_context": ("text", "CAST(j.trace_context AS text)"),
}


def _result(kind: str, source: str, filled: dict[str, str], tail: str = "") -> str:
    """One branch of the cycle's UNION: `filled` columns from `source`, NULL for the rest."""
    columns = [
        filled.get(name, f"CAST(NULL AS {sql_type})") + f" AS {name}"
        for name, (sql_type, _) in CYCLE_COLUMNS.items()
    ]
    return f"SELECT '{kind}' AS kind, {', '.join(columns)} FROM {source} {tail}"


_SAVED = {"job_id": "job_id", "state": "state"}
_ANY_FRESH = "EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting' AND flow_fresh)"
#: Limited queues with a due job: the first in ix_jobs_claim_queue's order, looked up
#: per limited queue. As an EXISTS the planner may hash every queued job instead,
#: and a plan made while the table was small keeps doing so until autovacuum
#: analyzes it (27 ms a cycle at 100,000 queued); without the order, it may scan
#: the table for the first match.
_LIMITED_DUE = """queue_limits AS l
CROSS JOIN LATERAL (
    SELECT 1 FROM jobs q
    WHERE q.state = 'queued' AND q.queue = l.queue AND q.run_at <= now()
    ORDER BY q.priority DESC, q.run_at
    LIMIT 1
) AS due
WHERE TRUE {limited_filter}"""
_CLAIMED = {name: name for name in CYCLE_COLUMNS}

# The claim's two CTEs, shared by both forms of the cycle.
_PICK_AND_CLAIM = f"""
picked AS (
    SELECT job_id FROM jobs
    WHERE state = 'queued' AND run_at <= now() {{queue_filter}}
      -- A handful of rows at most, hashed once per statement. Limited
      -- queues are claimed apart, under their limit (CLAIM_LIMITED).
      AND queue NOT IN (SELECT queue FROM queue_pauses
                        UNION ALL SELECT queue FROM queue_limits)
    -- Matches ix_jobs_claim / ix_jobs_claim_queue column for column, so the
    -- planner walks the index and stops after LIMIT rows instead of sorting
    -- the whole backlog.
    ORDER BY priority DESC, run_at
    LIMIT :limit
    -- Rows another worker is claiming right now are skipped, not waited on.
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs AS j
    SET state = 'running',
        -- Counted at claim, so a job that kills its worker still uses up attempts;
        -- at most to the column's limit (a row written by hand may sit there).
        attempts = least(j.attempts, 2147483646) + 1,
        locked_by = :worker_id,
        -- When the row was claimed, not when the statement began: one that
        -- waited on a lock must not look older than the worker's view of
        -- what it holds (see strays in RESCUE).
        locked_at = clock_timestamp(),
        heartbeat_at = now(),
        started_at = now(),
        progress = NULL,
        progress_message = NULL
    -- An array, not a join: the worker runs this statement with a generic plan
    -- (see claims.loop_connection), which cannot know LIMIT's value; for a join
    -- it would plan a hash of the whole table, for an array it walks pk_jobs.
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM picked))
    RETURNING {", ".join(f"{claim} AS {name}" for name, (_, claim) in CYCLE_COLUMNS.items())},
              j.run_at
)"""

# What a cycle finds left to do by other means, after the claimed rows.
_CLAIM_RESULTS = f"""
-- RETURNING has no order of its own: start jobs in claim order.
({_result("claimed", "claimed", _CLAIMED, "ORDER BY priority DESC, run_at")})
UNION ALL
-- Work for the promoter: one row if any waiting job is fresh.
{_result("promote", "(SELECT 1) AS one", {}, "WHERE {fresh}")}
UNION ALL
-- Limited queues with due jobs, for the worker to claim from apart.
{_result("limited", _LIMITED_DUE, {"queue": "l.queue"})}
"""

# One worker cycle in one statement, and so one round trip and one commit:
# save the outcomes of finished jobs, then claim as many due jobs as there are
# free slots. All parts see the same snapshot, so a job saved here cannot be
# claimed again by the same statement.
_CYCLE = f"""
WITH done AS ({_COMPLETE}),
failed AS ({_FAIL}),
freshened AS ({
    _freshen(
        "SELECT flow_key FROM done UNION ALL SELECT flow_key FROM failed "
        "WHERE state = 'failed' AND flow_kind <> 'ordering_block'"
    )
}),
{_PICK_AND_CLAIM}
{_result("saved", "done", _SAVED)}
UNION ALL
{_result("saved", "failed", _SAVED)}
UNION ALL
{_CLAIM_RESULTS.replace("{fresh}", _ANY_FRESH + " OR EXISTS (SELECT 1 FROM freshened)")}
"""
# The cycle with no outcomes to save, as an idle worker woken by a NOTIFY
# runs it: the same claim and result rows, without binding and planning
# nine empty arrays for the outcome CTEs (0.1-0.2 ms of a pickup).
_CLAIM_ONLY = f"""
WITH {_PICK_AND_CLAIM}
{_CLAIM_RESULTS.replace("{fresh}", _ANY_FRESH)}
"""


def _queue_forms(template: str) -> tuple[TextClause, TextClause, TextClause]:
    """`template` claiming from any queue, from one (`:queue`), and from several (`:queues`)."""
    return (
        text(template.format(queue_filter="", limited_filter="")),
        text(
            template.format(
                queue_filter="AND queue = :queue", limited_filter="AND l.queue = :queue"
            )
        ),
        text(
            template.format(
                queue_filter="AND queue = ANY(CAST(:queues AS text[]))",
                limited_filter="AND l.queue = ANY(CAST(:queues AS text[]))",
            )
        ),
    )


CYCLE_ANY, CYCLE_ONE_QUEUE, CYCLE_QUEUES = _queue_forms(_CYCLE)
CLAIM_ANY, CLAIM_ONE_QUEUE, CLAIM_QUEUES = _queue_forms(_CLAIM_ONLY)
#: Each cycle statement as the worker runs it, on the driver (see app.db.on_driver).
CYCLE_DRIVER = {
    statement: Raw(for_driver(statement))
    for statement in (
        CYCLE_ANY,
        CYCLE_ONE_QUEUE,
        CYCLE_QUEUES,
        CLAIM_ANY,
        CLAIM_ONE_QUEUE,
        CLAIM_QUEUES,
    )
}

SET_PROGRESS = text("""
UPDATE jobs SET progress = :progress, progress_message = :message
WHERE job_id = :job_id AND attempts = :attempt AND locked_by = :worker_id AND state = 'running'
""")

# Proof of life for the jobs this worker still runs; a job missing from the
# result was taken from it (rescued after a freeze) and must not be reported.
HEARTBEAT_JOBS = text(f"""
UPDATE jobs AS j SET heartbeat_at = now()
FROM unnest(CAST(:job_ids AS uuid[]), CAST(:attempts AS integer[])) AS d(job_id, attempt)
WHERE {_fence("job_ids")}
RETURNING j.job_id
""")

# Shutdown: hand unfinished jobs back at once rather than waiting for rescue.
# The attempt is refunded: the job did not fail, its worker was told to stop.
# The job keeps its place in the queue (its run_at).
# A cancelled job's attempt has ended here (its outcome dropped): the worker lets
# go of it, and a retry may start it again (see _RETRY).
LET_GO = text("""
UPDATE jobs AS j SET locked_by = NULL, locked_at = NULL
FROM unnest(CAST(:job_ids AS uuid[]), CAST(:attempts AS integer[])) AS d(job_id, attempt)
WHERE j.job_id = d.job_id AND j.attempts = d.attempt
  AND j.locked_by = :worker_id AND j.state = 'cancelled'
""")

RELEASE = text(f"""
UPDATE jobs AS j
SET state = 'queued', attempts = greatest(j.attempts - 1, 0),
    locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
FROM unnest(CAST(:job_ids AS uuid[]), CAST(:attempts AS integer[])) AS d(job_id, attempt)
WHERE {_fence("job_ids")}
RETURNING j.job_id
""")

# -- process liveness (app.jobs.processes) -----------------------------------
# The presence statements run on a process's dedicated psycopg connection,
# hence psycopg's parameter style.

# Register and take the life lock in one statement: whenever the row is
# visible its lock is held, so no peer can ever see a new process as dead.
# Every registration gets a fresh lock key: a lingering session of the same
# process (a connection the network cut, not yet noticed by the server) may
# still hold the old one.
# A process with a lease (behind a transaction pooler, no session to hold a lock
# in) takes no lock: it is alive while its heartbeat is younger than the lease.
PRESENCE_REGISTER = """
WITH registered AS (
    INSERT INTO workers (worker_id, kind, hostname, pid, queues, concurrency, job_names, lease)
    VALUES (%(worker_id)s, %(kind)s, %(hostname)s, %(pid)s, CAST(%(queues)s AS text[]),
            %(concurrency)s, CAST(%(job_names)s AS text[]), %(lease)s)
    ON CONFLICT (worker_id) DO UPDATE
    SET lock_key = DEFAULT, heartbeat_at = clock_timestamp(), job_names = excluded.job_names,
        lease = excluded.lease
    RETURNING lock_key, lease
)
SELECT lock_key, CASE WHEN lease IS NULL THEN pg_advisory_lock(%(namespace)s, lock_key) END
FROM registered
"""

# clock_timestamp(), not now(): a beat that waited for a lock records when it
# landed, so time the database made the process wait never counts against it.
PRESENCE_HEARTBEAT = """
UPDATE workers SET heartbeat_at = clock_timestamp() WHERE worker_id = %(worker_id)s
RETURNING lock_key
"""

# One process in the fleet watches for dead peers often (see RESCUE's suspects);
# key 0 is never a process's lock key (those start at 1).
TRY_WATCHER_LOCK = "SELECT pg_try_advisory_lock(%(namespace)s, 0)"

PRESENCE_UNREGISTER = "DELETE FROM workers WHERE worker_id = %(worker_id)s"
UNREGISTER_WORKER = text("DELETE FROM workers WHERE worker_id = :worker_id")

# Whether a process's life lock is held. pg_locks shows the two-key form
# pg_advisory_lock(int4, int4) with the keys in classid/objid and objsubid = 2
# (the one-bigint form has objsubid = 1); it spans every database of the
# server, hence the database filter.
_LOCK_HELD = """
EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = CAST(:namespace AS oid) AND l.objid = CAST(w.lock_key AS oid))
"""

# Workers whose life lock nobody holds right now, on a server that has been
# up for longer than `settle` (after a restart every lock is gone until the
# processes have reconnected). The watcher polls this and names those it saw without
# a lock for a while as RESCUE's suspects.
LOCKLESS_WORKERS = text(f"""
SELECT w.worker_id FROM workers w
WHERE w.kind = 'worker' AND w.lease IS NULL AND NOT {_LOCK_HELD}
  AND pg_postmaster_start_time() < now() - make_interval(secs => :settle)
""")

# Take running jobs away from processes that are gone, and forget the dead:
#
# * dead: nobody holds the life lock (the session ended with the process) and
#   either the heartbeat is late too (a live process re-registers within the
#   grace) or the watcher saw the lock missing for a while (a suspect). A
#   process with a lease holds no lock: it is dead once its heartbeat is
#   older than the lease it registered with.
#   Heartbeats count from the server's start at the earliest: after a
#   database restart every lock is gone and every heartbeat looks old, and
#   live processes need a moment to reconnect before they can prove it.
# * frozen: the process's own heartbeat is older than the stale timeout
#   (SIGSTOP, a hung machine, cut off). Its presence connection is never
#   blocked by locks on `jobs`, so a worker the database made wait is not
#   frozen. Frozen processes are not forgotten: they may wake up.
# * a job whose worker has no row at all (forgotten, or a test's drain) is
#   judged by the job's own heartbeat.
# * strays: running jobs the rescuing worker claimed itself but does not
#   hold (`:held`), claimed longer than the grace ago: the claim committed
#   but its result never reached the worker (the connection dropped with it
#   in flight), or the outcome could not be saved.
#
# Only a rescuer that has itself been up for a while judges others (`:judge`):
# one that just came back from an outage (the database down, read-only, every
# session cut) saw its peers in the same trouble, and they are reconnecting
# too. Strays are its own and need no judging.
#
# A rescued job keeps its place in the queue (its run_at); on its last
# attempt it ends `failed` with the reason.
RESCUE = text(f"""
WITH dead AS (
    SELECT w.worker_id FROM workers w
    WHERE CAST(:judge AS boolean) AND NOT {_LOCK_HELD}
      AND (greatest(w.heartbeat_at, pg_postmaster_start_time())
               < now() - make_interval(secs => coalesce(w.lease, :grace))
           OR (w.worker_id = ANY(CAST(:suspects AS text[]))
               AND pg_postmaster_start_time() < now() - make_interval(secs => :settle)))
),
frozen AS (
    SELECT w.worker_id FROM workers w
    WHERE CAST(:judge AS boolean)
      AND greatest(w.heartbeat_at, pg_postmaster_start_time())
          < now() - make_interval(secs => :stale)
),
forgotten AS (
    DELETE FROM workers WHERE worker_id IN (SELECT worker_id FROM dead)
),
lost AS (
    SELECT j.job_id,
           CASE WHEN j.locked_by IN (SELECT worker_id FROM dead)
                THEN 'its worker ' || j.locked_by || ' died'
                WHEN j.locked_by = :worker_id
                THEN 'its worker ' || j.locked_by || ' no longer held the claim'
                ELSE 'its worker ' || j.locked_by || ' sent no heartbeat for '
                     || CAST(:stale AS text) || ' s (frozen or cut off)'
           END AS reason
    FROM jobs j
    WHERE j.state = 'running'
      AND (j.locked_by IN (SELECT worker_id FROM dead)
           OR (j.locked_by = :worker_id AND NOT j.job_id = ANY(CAST(:held AS uuid[]))
               AND j.locked_at < now() - make_interval(secs => :grace))
           OR j.locked_by IN (SELECT worker_id FROM frozen)
           OR (CAST(:judge AS boolean)
               AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.worker_id = j.locked_by)
               AND greatest(j.heartbeat_at, pg_postmaster_start_time())
                   < now() - make_interval(secs => :stale)))
    FOR UPDATE OF j SKIP LOCKED
),
rescued AS (
    UPDATE jobs AS j
    SET {_ended(_LAST_ATTEMPT, None)},
        heartbeat_at = NULL,
        last_error = 'attempt ' || j.attempts || ' of ' || j.max_attempts || ' lost: '
                     || lost.reason,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker', j.locked_by,
            'error', 'lost: ' || lost.reason, 'traceback', NULL))
    FROM lost
    WHERE j.job_id = lost.job_id
    RETURNING j.job_id, j.name, j.state, j.last_error, j.flow_key, j.flow_kind
),
freshened AS ({
    _freshen(
        "SELECT flow_key FROM rescued WHERE state = 'failed' AND flow_kind <> 'ordering_block'"
    )
})
SELECT job_id, name, state, last_error FROM rescued
""")

PAUSE_QUEUE = text("""
INSERT INTO queue_pauses (queue, paused_by) VALUES (:queue, :paused_by)
ON CONFLICT (queue) DO NOTHING
RETURNING queue
""")

# Resuming wakes the workers at once instead of at their next poll.
RESUME_QUEUE = text("""
WITH resumed AS (DELETE FROM queue_pauses WHERE queue = :queue RETURNING queue)
SELECT pg_notify('pillars_jobs', queue) FROM resumed
""")

# Cancelling a running job does not interrupt its handler; the fence makes
# the worker drop whatever outcome it later tries to save.
CANCEL = text(f"""
WITH cancelled AS (
    UPDATE jobs SET state = 'cancelled', finished_at = now(), heartbeat_at = NULL,
                    flow_fresh = false
    WHERE job_id = :job_id AND state IN ('waiting', 'queued', 'running')
    RETURNING job_id, flow_key
),
freshened AS ({_freshen("SELECT flow_key FROM cancelled", "SELECT job_id FROM cancelled")})
SELECT job_id, (SELECT count(pg_notify('pillars_jobs', '')) FROM freshened) FROM cancelled
""")

# A retried job gets one more attempt if it used them all, and wakes the
# workers. Not while another live job holds its unique key (nor while its own
# cancelled attempt still runs), and one job per
# key when several are retried together (the newest). Its finished state is
# tallied as it leaves it, so the finished-jobs counters never go down.
_RETRY = """
WITH candidates AS (
    SELECT job_id, unique_key, queue, state FROM jobs AS c
    WHERE {condition} AND state IN ('failed', 'cancelled')
      AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.unique_key = c.unique_key
                      AND o.state IN ('waiting', 'queued', 'running'))
      -- Cancelled while it ran: not until its worker has let go of the attempt
      -- (or is gone), or two attempts would run at once.
      AND NOT (state = 'cancelled' AND locked_by IS NOT NULL
               AND EXISTS (SELECT 1 FROM workers w WHERE w.worker_id = c.locked_by))
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
chosen AS (
    SELECT job_id, queue, state FROM candidates c
    WHERE c.unique_key IS NULL
       OR c.job_id = (SELECT d.job_id FROM candidates d WHERE d.unique_key = c.unique_key
                      ORDER BY d.job_id DESC LIMIT 1)
),
retried AS (
    UPDATE jobs AS j
    -- A job with a flow key goes back through its key's limit.
    SET state = CASE WHEN j.flow_key IS NULL THEN 'queued' ELSE 'waiting' END,
        flow_fresh = j.flow_key IS NOT NULL,
        run_at = now(), finished_at = NULL, heartbeat_at = NULL,
        locked_by = NULL, locked_at = NULL,
        max_attempts = greatest(j.max_attempts, least(j.attempts, 2147483646) + 1)
    FROM chosen WHERE j.job_id = chosen.job_id
    RETURNING j.job_id, j.queue
),
tallied AS (
    INSERT INTO job_tallies (queue, state, count)
    SELECT queue, state, count(*) FROM chosen GROUP BY queue, state
    ON CONFLICT (queue, state) DO UPDATE SET count = job_tallies.count + excluded.count
)
SELECT job_id, pg_notify('pillars_jobs', queue),
       (SELECT count(*) FROM candidates) AS candidates
FROM retried
"""
RETRY_ONE = text(_RETRY.format(condition="job_id = :job_id"))
RETRY_FAILED = text(
    _RETRY.format(
        condition="state = 'failed' AND (CAST(:queue AS text) IS NULL OR queue = :queue) "
        "AND (CAST(:name AS text) IS NULL OR name = :name)"
    )
)

# Deleted finished jobs are tallied, so metrics counters never go down.
_DELETE = f"""
WITH gone AS (
    -- Locked first: a row a worker claims (or an operator retries) meanwhile is
    -- skipped, or judged again on its new version, never deleted as it was.
    DELETE FROM jobs WHERE job_id IN (
        SELECT job_id FROM jobs WHERE {{condition}} LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    RETURNING job_id, queue, state, flow_key
),
freshened AS ({_freshen("SELECT flow_key FROM gone", "SELECT job_id FROM gone")}),
tallied AS (
    INSERT INTO job_tallies (queue, state, count)
    SELECT queue, state, count(*) FROM gone WHERE {FINISHED_SQL} GROUP BY queue, state
    ON CONFLICT (queue, state) DO UPDATE SET count = job_tallies.count + excluded.count
)
SELECT count(*), (SELECT count(pg_notify('pillars_jobs', '')) FROM freshened) FROM gone
"""
DELETE_ONE = text(_DELETE.format(condition="job_id = :job_id AND state <> 'running'"))
DELETE_FAILED = text(
    _DELETE.format(
        condition="state = 'failed' AND (CAST(:queue AS text) IS NULL OR queue = :queue) "
        "AND (CAST(:name AS text) IS NULL OR name = :name)"
    )
)
# Batches keep each delete short, so pruning never holds locks or bloats WAL
# in one long transaction.
PRUNE = text(
    _DELETE.format(
        condition=f"{FINISHED_SQL} AND finished_at < now() - make_interval(secs => :older_than)"
    )
)

# -- flow control: the promoter and limited queues (app/jobs/flow.py) -----------

#: Namespace of the transaction advisory locks that serialize one flow key's
#: promotions (the second key is hashtext(flow_key)).
FLOW_NAMESPACE = 0x50_464C  # "PFL"

# The promoter's first step: take a batch of fresh jobs (others' batches are
# skipped), clear their mark, and return their keys.
TAKE_FRESH = text("""
WITH fresh AS (
    SELECT job_id FROM jobs WHERE state = 'waiting' AND flow_fresh
    ORDER BY job_id LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j SET flow_fresh = false FROM fresh WHERE j.job_id = fresh.job_id
RETURNING j.flow_key
""")

# Second: lock the keys, in one order everywhere so two promoters never
# deadlock. Held to the end of the transaction, so the next statement's
# snapshot (taken after the locks) sees every promotion of these keys.
LOCK_FLOW_KEYS = text("""
SELECT count(pg_advisory_xact_lock(:namespace, key_hash))
FROM (SELECT DISTINCT hashtext(key) AS key_hash FROM unnest(CAST(:keys AS text[])) AS key
      ORDER BY key_hash) AS ordered
""")

# Third: let in as many of each key's waiting jobs as its limit has room for:
# the limit of the job next in line, less the key's active jobs. A job let in
# goes to the back of the line of ready jobs (its run_at becomes now, unless
# it is scheduled later), so a key with a backlog takes turns with the others.
PROMOTE = text(f"""
WITH keys AS (SELECT DISTINCT unnest(CAST(:keys AS text[])) AS key),
room AS (
    SELECT k.key,
           (SELECT w.flow_limit FROM jobs w
            WHERE w.state = 'waiting' AND w.flow_key = k.key
            ORDER BY w.priority DESC, w.job_id LIMIT 1)
           - (SELECT count(*) FROM jobs j WHERE j.flow_key = k.key AND {ACTIVE}) AS room
    FROM keys k
),
-- The heads of each line are chosen first and locked after: a head another
-- transaction holds (a peer promoter's, an operator's) is left for it, never
-- overtaken by the job behind it.
heads AS (
    SELECT w.job_id FROM room r CROSS JOIN LATERAL (
        SELECT w.job_id FROM jobs w
        WHERE w.state = 'waiting' AND w.flow_key = r.key
        ORDER BY w.priority DESC, w.job_id
        LIMIT greatest(coalesce(r.room, 0), 0)
    ) AS w
),
picked AS (
    SELECT j.job_id FROM jobs j
    WHERE j.job_id IN (SELECT job_id FROM heads) AND j.state = 'waiting'
    FOR UPDATE SKIP LOCKED
),
promoted AS (
    UPDATE jobs AS j SET state = 'queued', flow_fresh = false, run_at = greatest(j.run_at, now())
    FROM picked WHERE j.job_id = picked.job_id
    RETURNING j.queue
)
SELECT (SELECT count(*) FROM promoted),
       (SELECT count(pg_notify('pillars_jobs', queue))
        FROM (SELECT DISTINCT queue FROM promoted) AS q)
""")

# A limited queue is claimed from by one worker at a time: the row lock on its
# limits (others skip the queue for this cycle), then a claim in a statement
# of its own whose snapshot, taken after the lock, sees every claim made
# under it. Running jobs are counted from the table, so a crashed worker's
# jobs free their places as soon as they are rescued: nothing can leak.
LOCK_QUEUE_LIMIT = text("""
SELECT queue FROM queue_limits WHERE queue = :queue FOR UPDATE SKIP LOCKED
""")

CLAIM_LIMITED = text(f"""
WITH limits AS (
    SELECT concurrency, rate, burst,
           -- The token bucket, refilled for the time since it was last drawn from.
           -- (a refill time ahead of the clock, after it was set back, adds none)
           least(burst, tokens + rate * greatest(extract(epoch FROM now() - refilled_at), 0))
               AS tokens
    FROM queue_limits WHERE queue = :queue
),
room AS (
    SELECT least(
        :limit,
        coalesce(l.concurrency - (SELECT count(*) FROM jobs r
                                  WHERE r.state = 'running' AND r.queue = :queue), :limit),
        coalesce(CAST(floor(l.tokens) AS integer), :limit)
    ) AS n
    FROM limits l
),
picked AS (
    SELECT job_id FROM jobs
    WHERE state = 'queued' AND run_at <= now() AND queue = :queue
      AND queue NOT IN (SELECT queue FROM queue_pauses)
    ORDER BY priority DESC, run_at
    -- No limits row, no room (a NULL LIMIT would be no limit at all).
    LIMIT coalesce((SELECT greatest(n, 0) FROM room), 0)
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs AS j
    SET state = 'running', attempts = least(j.attempts, 2147483646) + 1, locked_by = :worker_id,
        locked_at = clock_timestamp(), heartbeat_at = now(), started_at = now(),
        progress = NULL, progress_message = NULL
    -- An array, not a join: the worker runs this statement with a generic plan
    -- (see claims.loop_connection), which cannot know LIMIT's value; for a join
    -- it would plan a hash of the whole table, for an array it walks pk_jobs.
    WHERE j.job_id = ANY(ARRAY(SELECT job_id FROM picked))
    RETURNING {", ".join(f"{claim} AS {name}" for name, (_, claim) in CYCLE_COLUMNS.items())},
              j.run_at
),
spent AS (
    UPDATE queue_limits
    SET tokens = (SELECT tokens FROM limits) - (SELECT count(*) FROM claimed),
        refilled_at = now()
    WHERE queue = :queue AND rate IS NOT NULL
)
{_result("claimed", "claimed", _CLAIMED, "ORDER BY priority DESC, run_at")}
""")

# Setting limits starts with a full bucket; the workers are woken so a raised
# limit takes effect at once.
SET_QUEUE_LIMIT = text("""
WITH saved AS (
    INSERT INTO queue_limits (queue, concurrency, rate, burst, tokens, set_by)
    VALUES (:queue, :concurrency, :rate, :burst, coalesce(:burst, 0), :set_by)
    ON CONFLICT (queue) DO UPDATE
    SET concurrency = excluded.concurrency, rate = excluded.rate, burst = excluded.burst,
        tokens = least(coalesce(excluded.burst, 0), greatest(queue_limits.tokens, 0)
                       + coalesce(queue_limits.rate, 0)
                       * greatest(extract(epoch FROM now() - queue_limits.refilled_at), 0)),
        refilled_at = now(), set_at = now(), set_by = excluded.set_by
    RETURNING queue
)
SELECT queue, pg_notify('pillars_jobs', queue) FROM saved
""")

QUEUE_LIMITS = text("""
SELECT queue, concurrency, rate, burst, set_at, set_by FROM queue_limits ORDER BY queue
""")

CLEAR_QUEUE_LIMIT = text("""
WITH cleared AS (DELETE FROM queue_limits WHERE queue = :queue RETURNING queue)
SELECT queue, pg_notify('pillars_jobs', queue) FROM cleared
""")
