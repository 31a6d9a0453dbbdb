"""readable times: every time of a job is one its readers can convert; attempts >= 0

Revision ID: 0017_readable_times
Revises: 0016_notify_waiting
Create Date: 2026-12-02 17:00:00

A row written past enqueue (an import, a hand-made fix) with `created_at =
'-infinity'` stopped every claim of every worker: the claim reports each
job's age, `started_at - created_at`, and the subtraction fails for the
whole statement. The dashboard could not read such a row either (Python's
datetime ends at year 1 and 9999). `run_at` and `scheduled_for` were
already held to the readable range (0005); now the job's other times are.
A negative `attempts` is refused too (claims count up from it, releases
down to it). So are `cron_state` times past reading, or too late for a
schedule's next occurrence to be a time (a last run at 'infinity' failed
every step of its schedule, one in year 9999 every `flask cron list`).
A waiting job must have a flow key (one without failed every promotion),
and a queue limit must hold numbers a token bucket can use (a rate of
Infinity or NaN passed `rate > 0` and lifted the limit; tokens of
-Infinity failed every limited claim).

Safe beside a running queue, as 0005: constraints are added NOT VALID in
the migration's short transaction; rows that already hold such a time are
mended (to now) under row locks and the constraints validated under SHARE
UPDATE EXCLUSIVE, in an autocommit block. Every step can run again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_readable_times"
down_revision: str | None = "0016_notify_waiting"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READABLE = "'0001-01-02 00:00+00' AND '9999-12-30 00:00+00'"
#: Column: whether it may be NULL.
COLUMNS = {
    "created_at": False,
    "locked_at": True,
    "heartbeat_at": True,
    "started_at": True,
    "finished_at": True,
}


#: cron_state's times: readable, with room for the next occurrence of any schedule.
SCHEDULABLE = "'0001-01-02 00:00+00' AND '9000-01-01 00:00+00'"
CRON_COLUMNS = {"last_run_at": False, "removed_at": True, "paused_at": True}


#: What a waiting job without a flow key is cancelled with.
KEYLESS = "waiting without a flow key (a row written by hand): cancelled by migration 0017"


def _check(column: str, nullable: bool, readable: str = READABLE) -> str:
    inside = f"{column} BETWEEN {readable}"
    return f"{column} IS NULL OR {inside}" if nullable else inside


#: Every (table, constraint, check) this migration adds, the small tables first: the
#: lock on `jobs`, which every enqueue waits behind, is taken last, so one attempt
#: holds it for one lock wait at most.
CHECKS = [
    *(
        ("cron_state", f"ck_cron_state_{column}_readable", _check(column, nullable, SCHEDULABLE))
        for column, nullable in CRON_COLUMNS.items()
    ),
    ("queue_limits", "ck_queue_limits_rate_finite", "rate <= 1000000"),
    ("queue_limits", "ck_queue_limits_burst_bounded", "burst <= 1000000"),
    ("queue_limits", "ck_queue_limits_tokens_finite", "tokens BETWEEN -1e9 AND 1e9"),
    ("queue_limits", "ck_queue_limits_refilled_at_readable", f"refilled_at BETWEEN {READABLE}"),
    ("jobs", "ck_jobs_waiting_keyed", "state <> 'waiting' OR flow_key IS NOT NULL"),
    ("jobs", "ck_jobs_attempts_not_negative", "attempts >= 0"),
    *(
        ("jobs", f"ck_jobs_{column}_readable", _check(column, nullable))
        for column, nullable in COLUMNS.items()
    ),
]


def _mended(columns: dict[str, bool], readable: str) -> str:
    """SET items putting now() in place of each unreadable time (NULL stays NULL)."""
    return ", ".join(
        f"{column} = CASE WHEN NOT {column} BETWEEN {readable} THEN now() ELSE {column} END"
        for column in columns
    )


def _unreadable(columns: dict[str, bool], readable: str) -> str:
    return " OR ".join(f"NOT {column} BETWEEN {readable}" for column in columns)


def upgrade() -> None:
    for table, name, check in CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID")
    # Every mend is one UPDATE per table: a row is checked whole, against the NOT
    # VALID constraints too, so each row must come out right in every column at once.
    with op.get_context().autocommit_block():
        # A limit stored past reason: a rate or burst no bucket can hold, tokens that
        # are no number, a refill time no reader can convert.
        op.execute(
            "UPDATE queue_limits SET rate = CASE WHEN rate > 1000000 THEN 1000000 ELSE rate END,"
            " burst = CASE WHEN burst > 1000000 THEN 1000000 ELSE burst END,"
            " tokens = CASE WHEN tokens BETWEEN -1e9 AND 1e9 THEN least(tokens, 1000000)"
            " ELSE 0 END,"
            f" refilled_at = CASE WHEN refilled_at BETWEEN {READABLE} THEN refilled_at"
            " ELSE now() END"
            " WHERE rate > 1000000 OR burst > 1000000 OR NOT tokens BETWEEN -1e9 AND 1e9"
            f" OR NOT refilled_at BETWEEN {READABLE}"
        )
        # A schedule with an unreadable last run starts afresh from now.
        op.execute(
            f"UPDATE cron_state SET {_mended(CRON_COLUMNS, SCHEDULABLE)}"
            f" WHERE {_unreadable(CRON_COLUMNS, SCHEDULABLE)}"
        )
        # One pass over `jobs`; only the rows it mends are locked (usually none). A
        # waiting job with no key would wait for no one: it is cancelled, saying so
        # (queued, it might collide with a live job of its unique key); a retry runs it.
        keyless = "state = 'waiting' AND flow_key IS NULL"
        times = _mended({c: n for c, n in COLUMNS.items() if c != "finished_at"}, READABLE)
        op.execute(
            f"UPDATE jobs SET {times}, attempts = greatest(attempts, 0),"
            f" state = CASE WHEN {keyless} THEN 'cancelled' ELSE state END,"
            f" last_error = CASE WHEN {keyless} THEN '{KEYLESS}' ELSE last_error END,"
            f" finished_at = CASE WHEN {keyless} OR NOT finished_at BETWEEN {READABLE}"
            " THEN now() ELSE finished_at END"
            f" WHERE {_unreadable(COLUMNS, READABLE)} OR attempts < 0 OR ({keyless})"
        )
        for table, name, _ in CHECKS:
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, _ in CHECKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
