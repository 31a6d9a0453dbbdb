"""The dashboard's and /metrics' reads stay cheap on a big table.

Searches by name read through indexes, never the whole table: the name
index leaves running jobs out (a claim then adds no entry to it), so each
search by name is checked against the plans PostgreSQL makes for every
statement it sends, over a table of finished, queued and running jobs
where a scan of the table would be the slow way. And no read is compiled
by JIT, which over a big table cost more than the reads themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from app.jobs import counts, metrics, stats

pytestmark = pytest.mark.slow


@pytest.fixture
def table(db: Engine) -> Engine:
    """90,000 finished, 9,000 queued and 100 running jobs, analyzed: ten names
    share most of them and `test.rare` has a few of each state."""
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO jobs (name, queue, state, finished_at, locked_by)
            SELECT CASE WHEN n % 2000 IN (0, 7, 10) THEN 'test.rare'
                        ELSE 'test.n' || (n % 10) END, 'default',
                   CASE WHEN n % 1000 = 0 THEN 'running'
                        WHEN n % 10 = 0 THEN 'queued' ELSE 'succeeded' END,
                   CASE WHEN n % 10 <> 0 THEN now() END,
                   CASE WHEN n % 1000 = 0 THEN 'w' END
            FROM generate_series(1, 100000) AS n
        """)
        )
    with db.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE jobs"))
    return db


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement sent through `engine` while inside, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plans(engine: Engine, search: Callable[[Connection], object]) -> list[str]:
    """The plan of each statement `search` sends that reads the jobs table."""
    with engine.connect() as conn:
        with statements(engine) as sent:
            search(conn)
        return [
            "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
            for statement, parameters in sent
            if "jobs" in statement and not statement.startswith("EXPLAIN")
        ]


@pytest.mark.parametrize(
    "search",
    [
        pytest.param(lambda c: stats.list_jobs(c, stats.JobFilter(name="test.rare")), id="list"),
        pytest.param(
            lambda c: stats.list_jobs(c, stats.JobFilter(state="running", name="test.rare")),
            id="list-running",
        ),
        pytest.param(
            lambda c: stats.list_jobs(c, stats.JobFilter(state="queued", name="test.rare")),
            id="list-queued",
        ),
        pytest.param(lambda c: counts.for_name(c, "test.rare"), id="counts"),
        pytest.param(stats.orphaned_names, id="orphaned"),
    ],
)
def test_a_search_by_name_never_scans_the_table(
    table: Engine, search: Callable[[Connection], object]
) -> None:
    explained = plans(table, search)
    assert explained, "no statement read the jobs table"
    for plan in explained:
        assert "Seq Scan on jobs" not in plan, plan


def test_the_name_list_reads_the_name_index_in_order_and_running_jobs_apart(
    table: Engine,
) -> None:
    explained = plans(table, lambda c: stats.list_jobs(c, stats.JobFilter(name="test.rare")))
    assert any("ix_jobs_name_newest" in plan and "Sort" not in plan for plan in explained)
    assert any("ix_jobs_running" in plan for plan in explained)


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(stats.overview, id="overview"),
        pytest.param(lambda c: metrics.metrics_snapshot(c, alive_within=30), id="metrics"),
    ],
)
def test_overview_and_metrics_reads_are_never_compiled_by_jit(
    table: Engine, read: Callable[[Connection], object]
) -> None:
    with table.connect() as conn:
        conn.execute(text("SET jit = on"))
        conn.execute(text("SET jit_above_cost = 0"))  # every plan would qualify
        conn.commit()
        with statements(table) as sent:
            read(conn)
        assert conn.execute(text("SELECT current_setting('jit')")).scalar_one() == "off"
        explained = [
            "\n".join(conn.exec_driver_sql("EXPLAIN (ANALYZE) " + statement, parameters).scalars())
            for statement, parameters in sent
            if not statement.startswith(("EXPLAIN", "SELECT set_config"))
        ]
        conn.rollback()
    assert explained and not [plan for plan in explained if "JIT:" in plan]
