"""How many jobs are in each state: exact where that is cheap, estimated where it is not.

Counting a million rows exactly reads the whole table: about a quarter of a
second on every view of the overview. So the dashboard counts:

* exactly, the states a small index holds: queued (the claim index, read
  without touching the table), running, and failed or cancelled while there
  are at most `EXACT_FINISHED` of them. These are the figures people act on,
  and they change by the second;
* by estimate, everything else in a large table: succeeded jobs, and failed
  or cancelled ones past that bound. The estimates are the planner's own
  statistics (ANALYZE's sample, with the extended statistics on (state,
  queue) and (state, name) of migration 0010), scaled to the table's size
  now. They are as old as the last ANALYZE, which autovacuum runs after a
  tenth of the table changed; the page says so.

Counters maintained by a trigger were the other way, and exact. But every
enqueue, claim and completion would update the same few counter rows: the
workers would wait on each other's row locks, and an enqueue inside a long
web transaction would hold its counter locked until that commits. Estimates
cost the queue nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, text

from app.models import FINISHED_STATES, JOB_STATES

#: Below this many rows (estimated) the whole table is counted exactly: a few ms.
SMALL_TABLE = 100_000
#: Queued and running jobs are counted exactly up to this many (an index-only
#: scan of the claim index: about 15 ms for 50,000 rows).
EXACT_LIVE = 50_000
#: Failed and cancelled jobs are counted exactly up to this many (an index-only
#: scan of the list index, and for one queue a read of those rows: 8 ms for 5,000).
EXACT_FINISHED = 5_000
#: A name's jobs are counted exactly up to this many (through ix_jobs_name_newest).
EXACT_NAME = 10_000


@dataclass(frozen=True)
class Counts:
    """Jobs per state and queue, and which states are estimates."""

    #: state -> queue -> jobs (an estimated state lists its common queues only)
    by_queue: dict[str, dict[str, int]]
    #: state -> jobs in all queues
    totals: dict[str, int]
    estimated: frozenset[str] = frozenset()
    #: when ANALYZE last sampled the table, for estimates
    analyzed_at: datetime | None = None
    queues: list[str] = field(default_factory=list)


def _table(conn: Connection) -> tuple[float, datetime | None]:
    """The planner's idea of the table's rows now, and when ANALYZE last ran.

    As the planner does: rows per page at the last ANALYZE times the pages
    there are now. A table never analyzed guesses 100 bytes a row.
    """
    rows, analyzed_at = conn.execute(
        text("""
        SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0
                    THEN pg_relation_size(c.oid) / 100.0
                    ELSE c.reltuples / c.relpages
                         * (pg_relation_size(c.oid) / current_setting('block_size')::int)
               END,
               greatest(s.last_analyze, s.last_autoanalyze)
        FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE c.oid = CAST('jobs' AS regclass)
    """)
    ).one()
    return float(rows), analyzed_at


def _exact(conn: Connection) -> Counts:
    by_queue: dict[str, dict[str, int]] = {state: {} for state in JOB_STATES}
    for state, queue, count in conn.execute(
        text("SELECT state, queue, count(*) FROM jobs GROUP BY state, queue")
    ):
        by_queue[state][queue] = count
    return _counts(by_queue, {s: sum(q.values()) for s, q in by_queue.items()})


def _counts(
    by_queue: dict[str, dict[str, int]],
    totals: dict[str, int],
    estimated: frozenset[str] = frozenset(),
    analyzed_at: datetime | None = None,
) -> Counts:
    queues = sorted({queue for per_queue in by_queue.values() for queue in per_queue})
    return Counts(by_queue, totals, estimated, analyzed_at, queues)


def _state_shares(conn: Connection) -> dict[str, float]:
    """Each state's share of the table in ANALYZE's sample (all five fit its common values)."""
    row = conn.execute(
        text("""
        SELECT CAST(CAST(most_common_vals AS text) AS text[]), most_common_freqs FROM pg_stats
        WHERE schemaname = current_schema() AND tablename = 'jobs' AND attname = 'state'
    """)
    ).first()
    return dict(zip(row[0], row[1], strict=True)) if row and row[0] else {}


def _pair_shares(conn: Connection, statistics: str, column: str) -> dict[tuple[str, str], float]:
    """(state, `column`) -> share of the table, from extended statistics' common pairs."""
    row = conn.execute(
        text("""
        SELECT attnames, most_common_vals, most_common_freqs FROM pg_stats_ext
        WHERE schemaname = current_schema() AND statistics_name = :name
    """),
        {"name": statistics},
    ).first()
    if row is None or not row.most_common_vals:
        return {}
    names = list(row.attnames)
    at_state, at_other = names.index("state"), names.index(column)
    return {
        (values[at_state], values[at_other]): share
        for values, share in zip(row.most_common_vals, row.most_common_freqs, strict=True)
    }


def _state(state: str) -> str:
    """`state` as a literal for SQL text.

    Not a parameter: once psycopg prepares a statement that runs often, the
    server may plan it once for any state, and such a generic plan cannot
    use the partial index of the one state asked for (a running job among a
    million rows then costs a full scan). The states are this module's own.
    """
    if state not in JOB_STATES:
        raise ValueError(f"no job state {state!r}")
    return f"'{state}'"


def _capped(conn: Connection, state: str, cap: int) -> dict[str, int] | None:
    """Exact jobs per queue in `state`, or None when there are more than `cap`."""
    rows = conn.execute(
        text(f"""
        -- The state's partial index (ix_jobs_claim_queue, index-only, for queued;
        -- ix_jobs_running; ix_jobs_ended_badly_newest) stops after :cap rows.
        SELECT queue, count(*) FROM (
            SELECT queue FROM jobs WHERE state = {_state(state)} LIMIT :cap
        ) AS t GROUP BY queue
    """),
        {"cap": cap + 1},
    ).all()
    found = {queue: count for queue, count in rows}
    return None if sum(found.values()) > cap else found


def by_state_and_queue(conn: Connection) -> Counts:
    """Jobs per state and queue for the overview: see the module docstring for which are exact."""
    rows, analyzed_at = _table(conn)
    if rows < SMALL_TABLE:
        return _exact(conn)
    shares, pairs = _state_shares(conn), _pair_shares(conn, "st_jobs_state_queue", "queue")
    by_queue: dict[str, dict[str, int]] = {state: {} for state in JOB_STATES}
    totals = {state: round(rows * shares.get(state, 0.0)) for state in JOB_STATES}
    for (state, queue), share in pairs.items():
        if state in by_queue:
            by_queue[state][queue] = round(rows * share)
    estimated = set(JOB_STATES)
    for state in JOB_STATES:
        live = state in ("queued", "running")
        if not live and (state == "succeeded" or totals[state] > 2 * EXACT_FINISHED):
            continue  # no small index holds them: the estimate stands
        exact = _capped(conn, state, EXACT_LIVE if live else EXACT_FINISHED)
        if exact is not None:
            by_queue[state], totals[state] = exact, sum(exact.values())
            estimated.discard(state)
    return _counts(by_queue, totals, frozenset(estimated), analyzed_at)


def _planned_rows(conn: Connection, state: str | None, name: str, queue: str | None) -> int:
    """The planner's estimate of jobs with `name` (and `state`, `queue`): no rows read."""
    query = "SELECT 1 FROM jobs WHERE name = :name"
    params = {"name": name}
    if state is not None:
        query += f" AND state = {_state(state)}"
    if queue is not None:
        query, params["queue"] = f"{query} AND queue = :queue", queue
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {query}"), params).scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    return int(document[0]["Plan"]["Plan Rows"])


def for_name(conn: Connection, name: str, queue: str | None = None) -> Counts:
    """Jobs per state with one name (and queue).

    Exact while the name has at most EXACT_NAME jobs (the scan stops there,
    whatever the queue filter matches); past that, queued and running are
    still exact and the finished states are the planner's estimates.
    """
    found: dict[str, int] = {}
    scanned = 0
    if _planned_rows(conn, None, name, None) > 2 * EXACT_NAME:
        return _estimated_for_name(conn, name, queue)
    matching = "count(*)" if queue is None else "count(*) FILTER (WHERE queue = :queue)"
    for state, seen, matched in conn.execute(
        text(f"""
        -- ix_jobs_name_newest (every job but the running ones), stopping
        -- after :cap rows of the name.
        SELECT state, count(*), {matching}
        FROM (SELECT state, queue FROM jobs WHERE name = :name AND state <> 'running'
              LIMIT :cap) AS t
        GROUP BY state
    """),
        {"name": name, "queue": queue, "cap": EXACT_NAME + 1},
    ):
        found[state], scanned = matched, scanned + seen
    if scanned <= EXACT_NAME:
        found["running"] = _live_with_name(conn, "running", name, queue)
        return _counts({}, {state: found.get(state, 0) for state in JOB_STATES})
    return _estimated_for_name(conn, name, queue)


def _estimated_for_name(conn: Connection, name: str, queue: str | None) -> Counts:
    _, analyzed_at = _table(conn)
    totals = {state: _planned_rows(conn, state, name, queue) for state in JOB_STATES}
    for state in ("queued", "running"):
        totals[state] = _live_with_name(conn, state, name, queue)
    return _counts({}, totals, frozenset(FINISHED_STATES), analyzed_at)


def _live_with_name(conn: Connection, state: str, name: str, queue: str | None) -> int:
    """Exact queued or running jobs with `name` (and `queue`), read through the state's index."""
    in_queue = "" if queue is None else "AND queue = :queue"
    found: int = conn.execute(
        text(
            f"SELECT count(*) FROM jobs WHERE state = {_state(state)} AND name = :name {in_queue}"
        ),
        {"name": name, "queue": queue},
    ).scalar_one()
    return found


def _capped_total(conn: Connection, state: str, queue: str | None, cap: int) -> int | None:
    """Exact jobs in `state` (and `queue`), or None past `cap`: an index-only scan where it can."""
    in_queue = "" if queue is None else "AND queue = :queue"
    found: int = conn.execute(
        text(f"""
        -- ix_jobs_claim(_queue), ix_jobs_running, ix_jobs_ended_badly_newest; stops at :cap.
        -- The queue clause is left out rather than made optional with OR: a prepared
        -- statement's generic plan could then use no index at all.
        SELECT count(*) FROM (
            SELECT 1 FROM jobs WHERE state = {_state(state)} {in_queue} LIMIT :cap
        ) AS t
    """),
        {"queue": queue, "cap": cap + 1},
    ).scalar_one()
    return None if found > cap else found


def totals(conn: Connection, queue: str | None = None) -> Counts:
    """Jobs per state (in one queue, or all): the job list's filter, cheaper than per queue.

    The same rule as `by_state_and_queue`, with counts that need no grouping:
    failed and cancelled jobs of one queue are counted only once the state's
    own index says they are few.
    """
    rows, analyzed_at = _table(conn)
    if rows < SMALL_TABLE:
        whole = _exact(conn)
        if queue is None:
            return whole
        return _counts({}, {s: whole.by_queue[s].get(queue, 0) for s in JOB_STATES})
    if queue is None:
        shares = _state_shares(conn)
        found = {state: round(rows * shares.get(state, 0.0)) for state in JOB_STATES}
    else:
        pairs = _pair_shares(conn, "st_jobs_state_queue", "queue")
        found = {state: round(rows * pairs.get((state, queue), 0.0)) for state in JOB_STATES}
    estimated = set(JOB_STATES)
    for state in ("queued", "running"):
        exact = _capped_total(conn, state, queue, EXACT_LIVE)
        if exact is not None:
            found[state] = exact
            estimated.discard(state)
    for state in ("failed", "cancelled"):
        if _capped_total(conn, state, None, EXACT_FINISHED) is None:
            continue  # many: the estimate stands
        exact = _capped_total(conn, state, queue, EXACT_FINISHED)
        if exact is not None:
            found[state] = exact
            estimated.discard(state)
    return _counts({}, found, frozenset(estimated), analyzed_at)


def for_filter(conn: Connection, queue: str | None, name: str | None) -> Counts:
    """Jobs per state matching the job list's queue and name filters."""
    if name is not None:
        return for_name(conn, name, queue)
    return totals(conn, queue)
