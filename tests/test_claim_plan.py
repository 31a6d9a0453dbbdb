"""Claiming stays an index scan, whatever the backlog."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, TextClause, text

from app.config import Settings
from app.db import Raw, on_driver
from app.jobs import claims, sql

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


#: A cycle that saves nothing.
EMPTY: dict[str, object] = {
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
        (sql.CLAIM_ANY, {}, "ix_jobs_claim"),
        (sql.CLAIM_ONE_QUEUE, {"queue": "mail"}, "ix_jobs_claim_queue"),
    ],
)
def test_claim_walks_the_claim_index_without_sorting_the_backlog(
    backlog: Engine, statement: object, params: dict[str, object], index: str
) -> None:
    explained = plan(backlog, str(statement), {"worker_id": "w", "limit": 10, **EMPTY, **params})
    picking = explained.split("CTE picked")[1].split("CTE claimed")[0]
    assert f"Index Scan using {index} on jobs" in picking, explained
    assert "Sort" not in picking, explained  # (the 10 claimed rows are sorted afterwards)
    assert "Seq Scan on jobs" not in explained, explained


def cycle_args(statement: Raw, params: dict[str, str]) -> str:
    """EXECUTE's arguments for `statement`: `params` as SQL literals, the worker and a
    LIMIT of 10, and empty arrays for the outcomes it saves."""
    values = {"worker_id": "'w'", "limit": "10", **params}
    return ", ".join(values.get(name, "'{}'") for name in statement.names)


@contextmanager
def planned_once(conn: Connection, statement: Raw) -> Iterator[None]:
    """`statement` prepared as `cycle` and planned once, without its values, as the
    worker's loop runs it (see `claims.loop_connection`); undone at the end."""
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("PREPARE cycle AS " + statement.query.decode())
    try:
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql("DEALLOCATE cycle")
        conn.exec_driver_sql("RESET plan_cache_mode")


def generic_plan(engine: Engine, statement: Raw, params: dict[str, str]) -> str:
    """The plan the worker's loop runs `statement` with."""
    with engine.connect() as conn, planned_once(conn, statement):
        explained = conn.exec_driver_sql(f"EXPLAIN EXECUTE cycle({cycle_args(statement, params)})")
        return "\n".join(explained.scalars())


@pytest.mark.parametrize(
    ("statement", "params", "index"),
    [
        (sql.CYCLE_ANY, {}, "ix_jobs_claim"),
        (sql.CYCLE_ONE_QUEUE, {"queue": "'mail'"}, "ix_jobs_claim_queue"),
        (sql.CYCLE_QUEUES, {"queues": "'{mail,reports}'"}, "ix_jobs_claim"),
        (sql.CLAIM_ANY, {}, "ix_jobs_claim"),
        (sql.CLAIM_ONE_QUEUE, {"queue": "'mail'"}, "ix_jobs_claim_queue"),
        (sql.CLAIM_QUEUES, {"queues": "'{mail,reports}'"}, "ix_jobs_claim"),
    ],
)
def test_the_cycle_planned_once_for_any_limit_and_batch_still_walks_indexes(
    backlog: Engine, statement: TextClause, params: dict[str, str], index: str
) -> None:
    """Not knowing how many jobs it claims or saves, the plan must still not read the
    table, nor the batch once per running job (the statistics saw none running)."""
    explained = generic_plan(backlog, sql.CYCLE_DRIVER[statement], params)
    # The plan's top-level parts, by the CTE each one computes.
    parts = {part.split("\n")[0]: part for part in re.split(r"\n  (?=CTE |->)", explained)}
    assert f"Index Scan using {index} on jobs" in parts["CTE picked"], explained
    assert "Seq Scan on jobs" not in explained, explained
    writes = [part for part in ("CTE done", "CTE failed", "CTE claimed") if part in parts]
    assert "CTE claimed" in writes and (len(writes) == 3) == ("done_ids" in str(statement))
    for part in writes:
        assert "Index Scan using pk_jobs" in parts[part], explained
        assert "ix_jobs_running" not in parts[part], explained


@pytest.fixture
def keyed_backlog(db: Engine) -> Engine:
    """100,000 jobs over 10,000 concurrency keys (limit 2): two let in per key, the rest
    waiting, some fresh; and 100,000 finished ones. Analyzed."""
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO jobs (name, queue, state, run_at, flow_key, flow_limit, flow_kind,
                              flow_fresh, finished_at)
            SELECT 'test.noop', 'default',
                   CASE WHEN n > 100000 THEN 'succeeded' WHEN n % 10 < 2 THEN 'queued'
                        ELSE 'waiting' END,
                   now() - n * interval '1 second',
                   'user:' || (n % 10000), 2, 'concurrency',
                   n <= 100000 AND n % 10 >= 2 AND n % 997 = 0,
                   CASE WHEN n > 100000 THEN now() END
            FROM generate_series(1, 200000) AS n
        """)
        )
    with db.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE jobs"))
    return db


def test_flow_control_walks_indexes_with_100k_jobs_over_10k_keys(keyed_backlog: Engine) -> None:
    keys = [f"user:{n}" for n in range(0, 10000, 97)]
    checks: list[tuple[object, dict[str, object]]] = [
        (sql.TAKE_FRESH, {"limit": 200}),
        (sql.PROMOTE, {"keys": keys}),
        (sql.CYCLE_ANY, {"worker_id": "w", "limit": 10, **EMPTY}),
        (sql.CLAIM_ANY, {"worker_id": "w", "limit": 10}),
    ]
    for statement, params in checks:
        explained = plan(keyed_backlog, str(statement), params)
        assert "Seq Scan on jobs" not in explained, explained
    promote = plan(keyed_backlog, str(sql.PROMOTE), {"keys": keys})
    assert "ix_jobs_waiting" in promote and "ix_jobs_flow_active" in promote, promote
    assert "ix_jobs_fresh" in plan(keyed_backlog, str(sql.TAKE_FRESH), {"limit": 200})


def test_the_cycle_goes_out_in_numbered_placeholders_the_server_reads_as_written(
    db: Engine,
) -> None:
    """Converted once (`app.db.Raw`): repeated names share a number, `%%` is a percent sign."""
    raw = Raw("SELECT %(a)s::int + %(b)s::int, %(a)s::int, '100%%' LIKE '100%%'")
    assert raw.query == b"SELECT $1::int + $2::int, $1::int, '100%' LIKE '100%'"
    with db.connect() as conn:
        assert on_driver(conn, raw, {"b": 2, "a": 40, "unused": 0}) == [(42, 40, True)]
    for statement in sql.CYCLE_DRIVER.values():
        assert b"%(" not in statement.query and statement.query.count(b"$1") >= 1
        assert {"worker_id", "limit"} <= set(statement.names)


@pytest.fixture
def unseen_burst(db: Engine) -> Iterator[Engine]:
    """300 finished jobs, analyzed; then a burst of 20,000 queued ones the statistics
    have not seen yet (autovacuum is held off the table until the test ends)."""
    fill = """
        INSERT INTO jobs (name, state, run_at, finished_at)
        SELECT 'test.noop', :state, now() - n * interval '1 second',
               CASE WHEN :state = 'succeeded' THEN now() END
        FROM generate_series(1, :n) AS n
    """
    with db.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        auto.execute(text("ALTER TABLE jobs SET (autovacuum_enabled = off)"))
        auto.execute(text(fill), {"state": "succeeded", "n": 300})
        auto.execute(text("ANALYZE jobs"))
        auto.execute(text(fill), {"state": "queued", "n": 20_000})
    yield db
    with db.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        auto.execute(text("ALTER TABLE jobs RESET (autovacuum_enabled)"))


def most_rows_one_step_reads(engine: Engine, statement: Raw, params: dict[str, str]) -> int:
    """Run `statement` as the worker's loop does and return the most rows any step of
    its plan read (kept or filtered out); then undo what it did."""
    with engine.connect() as conn, planned_once(conn, statement):
        (document,) = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE cycle({cycle_args(statement, params)})"
        ).scalar_one()
    return most_rows_read(document["Plan"])


def most_rows_read(plan: dict[str, Any]) -> int:
    """The most rows any step of an EXPLAIN ANALYZE plan read, kept or filtered out."""
    most, steps = 0, [plan]
    while steps:
        step = steps.pop()
        read = step["Actual Rows"] + step.get("Rows Removed by Filter", 0)
        most = max(most, read * step["Actual Loops"])
        steps.extend(step.get("Plans", []))
    return int(most)


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (sql.CYCLE_ANY, {}),
        (sql.CYCLE_ONE_QUEUE, {"queue": "'default'"}),
        (sql.CYCLE_QUEUES, {"queues": "'{default,mail}'"}),
        (sql.CLAIM_ANY, {}),
        (sql.CLAIM_ONE_QUEUE, {"queue": "'default'"}),
        (sql.CLAIM_QUEUES, {"queues": "'{default,mail}'"}),
    ],
)
def test_a_burst_the_statistics_have_not_seen_is_not_read_whole_by_every_cycle(
    unseen_burst: Engine, statement: TextClause, params: dict[str, str]
) -> None:
    """Until autovacuum analyzes the table, the plan is made for the few rows it last
    saw: no part of the cycle may then read the whole backlog (it once hashed every
    queued job, to learn whether a limited queue had one due)."""
    most = most_rows_one_step_reads(unseen_burst, sql.CYCLE_DRIVER[statement], params)
    assert most <= 100, f"a step of the cycle read {most} rows of a 20,000-job burst"


@pytest.fixture
def empty_analyzed(db: Engine) -> Iterator[Engine]:
    """The jobs table empty, vacuumed and analyzed so: the statistics of a fresh
    deployment (autovacuum is held off the table until the test ends)."""
    with db.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        auto.execute(text("ALTER TABLE jobs SET (autovacuum_enabled = off)"))
        auto.execute(text("VACUUM ANALYZE jobs"))
    yield db
    with db.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        auto.execute(text("ALTER TABLE jobs RESET (autovacuum_enabled)"))


@pytest.mark.parametrize("form", [sql.CYCLE_ANY, sql.CLAIM_ANY])
def test_a_plan_the_loop_made_on_an_empty_table_still_walks_indexes_after_a_burst(
    empty_analyzed: Engine, settings: Settings, form: TextClause
) -> None:
    """The loop keeps its generic plan until the table's statistics change, which
    takes autovacuum up to a minute after a burst: the plan made on an empty table
    must not read every row at each cycle meanwhile."""
    statement = sql.CYCLE_DRIVER[form]
    args = cycle_args(statement, {})
    loop = claims.loop_connection(empty_analyzed, settings)
    try:
        loop.exec_driver_sql("PREPARE cycle AS " + statement.query.decode())
        loop.exec_driver_sql(f"EXECUTE cycle({args})")  # planned now, for an empty table
        with empty_analyzed.begin() as conn:
            conn.execute(
                text("""
                INSERT INTO jobs (name, state, finished_at)
                SELECT 'test.noop', CASE WHEN n % 2 = 0 THEN 'queued' ELSE 'succeeded' END,
                       CASE WHEN n % 2 = 1 THEN now() END
                FROM generate_series(1, 40000) AS n
            """)
            )
        loop.exec_driver_sql("BEGIN")
        (document,) = loop.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE cycle({args})"
        ).scalar_one()
        loop.exec_driver_sql("ROLLBACK")
    finally:
        loop.invalidate()
        loop.close()
    most = most_rows_read(document["Plan"])
    assert most <= 100, f"a step of the cycle read {most} rows of a 40,000-job table"
