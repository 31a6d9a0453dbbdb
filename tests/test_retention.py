"""Finished jobs leave the table by age, and past a number of rows, by count; records
of what people did, by age.

The table's size decides what pruning, vacuum and every claim cost (see
`bench/retention.py` and docs/operations.md, Retention), so an operator can
bound it in rows as well as in days.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from app.config import ConfigError, Settings
from app.jobs.maintenance import prune_audit, prune_jobs
from tests import factory

HISTORY = text("""
INSERT INTO jobs (name, state, finished_at, queue)
SELECT 'test.noop', 'succeeded', now() - make_interval(mins => g), 'default'
FROM generate_series(0, :count - 1) AS g
""")


def finished_ages(engine: Engine) -> list[int]:
    """Minutes since each finished job finished, newest first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT CAST(round(extract(epoch FROM now() - finished_at) / 60) AS integer)"
                    " FROM jobs WHERE state = 'succeeded' ORDER BY finished_at DESC"
                )
            ).scalars()
        )


def tallied(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(sum(count), 0) FROM job_tallies")).scalar_one()
        )


def test_pruning_keeps_at_most_the_newest_rows_whatever_their_age(
    db: Engine, settings: Settings
) -> None:
    with db.begin() as conn:
        conn.execute(HISTORY, {"count": 30})
        conn.execute(text("INSERT INTO jobs (name, state) VALUES ('test.noop', 'queued')"))
    deleted = prune_jobs(factory.context(db, settings), keep_at_most=10)
    assert deleted == 20
    assert finished_ages(db) == list(range(10))
    assert tallied(db) == 20  # counters of finished jobs never go down
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs WHERE state = 'queued'")).scalar() == 1


def test_pruning_by_age_alone_leaves_young_rows_however_many(
    db: Engine, settings: Settings
) -> None:
    with db.begin() as conn:
        conn.execute(HISTORY, {"count": 30})
    assert (
        prune_jobs(factory.context(db, settings), older_than_days=20 / 1440) == 10
    )  # older than 20 minutes
    assert finished_ages(db) == list(range(20))


def test_a_cap_above_the_table_prunes_nothing_more(db: Engine, settings: Settings) -> None:
    with db.begin() as conn:
        conn.execute(HISTORY, {"count": 5})
    assert prune_jobs(factory.context(db, settings), keep_at_most=10) == 0


@pytest.mark.parametrize("raw", ["0", "-1", "ten", "1e9", "1.5", "9" * 13])
def test_a_row_cap_is_a_positive_whole_number(raw: str) -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "JOB_RETENTION_ROWS": raw}
    with pytest.raises(ConfigError, match="JOB_RETENTION_ROWS must be a whole number"):
        Settings.from_env(env)


def test_a_row_cap_may_be_written_with_underscores() -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "JOB_RETENTION_ROWS": "20_000_000"}
    assert Settings.from_env(env).job_retention_rows == 20_000_000


ACTIONS = text("""
INSERT INTO operator_actions (at, actor, via, action, subject)
SELECT now() - make_interval(days => g), 'ops@example.com', 'cli', 'pause', 'day ' || g
FROM generate_series(0, :count - 1) AS g
""")


def test_records_of_what_people_did_go_after_the_audit_retention(
    db: Engine, settings: Settings
) -> None:
    with db.begin() as conn:
        conn.execute(ACTIONS, {"count": 12})
    assert settings.audit_retention_days == 365  # a year unless AUDIT_RETENTION_DAYS says
    assert prune_audit(factory.context(db, settings)) == 0
    assert prune_audit(factory.context(db, settings), older_than_days=4.5, batch=2) == 7
    with db.connect() as conn:
        kept = conn.execute(text("SELECT subject FROM operator_actions ORDER BY at DESC"))
        assert kept.scalars().all() == [f"day {g}" for g in range(5)]
