"""Claiming stays an index scan, whatever the backlog."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from app.jobs import sql

pytestmark = pytest.mark.slow


@pytest.fixture
def backlog(db: Engine) -> Engine:
    """50,000 queued and 50,000 finished jobs over three queues, analyzed."""
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO jobs (name, queue, priority, state, run_at, finished_at)
            SELECT 'test.noop', (ARRAY['default', 'mail', 'reports'])[1 + n % 3], n % 5,
                   CASE WHEN n % 2 = 0 THEN 'queued' ELSE 'succeeded' END,
                   now() - n * interval '1 second',
                   CASE WHEN n % 2 = 1 THEN now() END
            FROM generate_series(1, 100000) AS n
        """)
        )
    with db.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE jobs"))
    return db


def plan(engine: Engine, statement: str, params: dict[str, object]) -> str:
    with engine.begin() as conn:
        rows = conn.execute(text("EXPLAIN " + statement), params).scalars()
        explained = "\n".join(rows)
        conn.rollback()
    return explained


@pytest.mark.parametrize(
    ("statement", "params", "index"),
    [
        (sql.CYCLE_ANY, {}, "ix_jobs_claim"),
        (sql.CYCLE_ONE_QUEUE, {"queue": "mail"}, "ix_jobs_claim_queue"),
    ],
)
def test_claim_walks_the_claim_index_without_sorting_the_backlog(
    backlog: Engine, statement: object, params: dict[str, object], index: str
) -> None:
    empty: dict[str, object] = {
        "done_ids": [],
        "done_attempts": [],
        "results": [],
        "failed_ids": [],
        "failed_attempts": [],
        "messages": [],
        "tracebacks": [],
        "delays": [],
        "discards": [],
    }
    explained = plan(backlog, str(statement), {"worker_id": "w", "limit": 10, **empty, **params})
    picking = explained.split("CTE picked")[1].split("CTE claimed")[0]
    assert f"Index Scan using {index} on jobs" in picking, explained
    assert "Sort" not in picking, explained  # (the 10 claimed rows are sorted afterwards)
    assert "Seq Scan on jobs" not in explained, explained
