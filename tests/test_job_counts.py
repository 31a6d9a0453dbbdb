"""Jobs per state: exact where a small index holds them, estimated from statistics otherwise.

The thresholds are lowered so a table of a few hundred rows plays a large
one; the statistics are real (ANALYZE over the test table).
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from app.jobs import counts


def fill(db: Engine, **per_state: int) -> None:
    """Insert jobs by SQL, `per_state` of each state, over two queues and two names."""
    with db.begin() as conn:
        for state, n in per_state.items():
            conn.execute(
                text("""
                INSERT INTO jobs (name, queue, state, finished_at)
                SELECT CASE WHEN g % 2 = 0 THEN 'test.add' ELSE 'test.noop' END,
                       CASE WHEN g % 4 = 0 THEN 'mail' ELSE 'default' END,
                       :state,
                       CASE WHEN :state IN ('succeeded', 'failed', 'cancelled') THEN now() END
                FROM generate_series(1, :n) AS g
            """),
                {"state": state, "n": n},
            )
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE jobs"))


@pytest.fixture
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat the test table as a large one."""
    monkeypatch.setattr(counts, "SMALL_TABLE", 100)
    monkeypatch.setattr(counts, "EXACT_FINISHED", 50)
    monkeypatch.setattr(counts, "EXACT_NAME", 50)


def test_a_small_table_is_counted_exactly(db: Engine) -> None:
    fill(db, queued=4, succeeded=5)
    with db.connect() as conn:
        found = counts.by_state_and_queue(conn)
    assert found.estimated == frozenset()
    assert found.by_queue["queued"] == {"default": 3, "mail": 1}
    assert found.totals["succeeded"] == 5 and found.queues == ["default", "mail"]


def test_a_large_table_estimates_finished_jobs_and_counts_live_and_few_ones_exactly(
    db: Engine, large: None
) -> None:
    fill(db, queued=40, running=2, succeeded=3000, failed=400, cancelled=8)
    with db.connect() as conn:
        found = counts.by_state_and_queue(conn)
    assert found.estimated == {"succeeded", "failed"}
    assert found.totals["queued"] == 40 and found.by_queue["queued"] == {"default": 30, "mail": 10}
    assert found.totals["running"] == 2 and found.totals["cancelled"] == 8
    # ANALYZE read every row of so small a table, so its estimates are close.
    assert 2700 <= found.totals["succeeded"] <= 3300
    assert 360 <= found.totals["failed"] <= 440
    assert 2000 <= found.by_queue["succeeded"]["default"] <= 2500
    assert found.analyzed_at is not None


def test_queued_and_running_are_exact_even_when_the_statistics_are_stale(
    db: Engine, large: None
) -> None:
    fill(db, queued=40, succeeded=3000)
    with db.begin() as conn:  # every queued job finishes; no ANALYZE since
        conn.execute(
            text("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE state = 'queued'")
        )
    with db.connect() as conn:
        found = counts.by_state_and_queue(conn)
    assert found.totals["queued"] == 0 and "queued" not in found.estimated


def test_more_live_jobs_than_are_worth_counting_are_estimated(
    db: Engine, large: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counts, "EXACT_LIVE", 30)
    fill(db, queued=400, succeeded=3000)
    with db.connect() as conn:
        found = counts.by_state_and_queue(conn)
    assert "queued" in found.estimated and 360 <= found.totals["queued"] <= 440


def test_a_names_jobs_are_counted_exactly_while_few(db: Engine, large: None) -> None:
    fill(db, queued=10, running=8, failed=20)
    with db.connect() as conn:
        found = counts.for_name(conn, "test.add")
        in_mail = counts.for_name(conn, "test.add", "mail")
    assert found.estimated == frozenset()
    assert (found.totals["queued"], found.totals["running"], found.totals["failed"]) == (5, 4, 10)
    assert (in_mail.totals["queued"], in_mail.totals["running"], in_mail.totals["failed"]) == (
        2,
        2,
        5,
    )


def test_a_name_with_many_jobs_gets_estimates_for_finished_states_only(
    db: Engine, large: None
) -> None:
    fill(db, queued=30, running=6, succeeded=2000, failed=200)
    with db.connect() as conn:
        found = counts.for_name(conn, "test.add")
    assert found.estimated == {"succeeded", "failed", "cancelled"}
    assert found.totals["queued"] == 15 and found.totals["running"] == 3
    assert 800 <= found.totals["succeeded"] <= 1200


def test_a_queue_filter_reads_its_column_of_the_overview_counts(db: Engine) -> None:
    fill(db, queued=8, failed=4)
    with db.connect() as conn:
        found = counts.for_filter(conn, "mail", None)
    assert (found.totals["queued"], found.totals["failed"]) == (2, 1)
