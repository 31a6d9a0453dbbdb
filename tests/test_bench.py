"""The queue benchmark: its arithmetic, and one tiny end-to-end run on a given server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from bench.measure import Drain, Pickup, drain_from_batches, percentile
from tests.database import with_database

ROOT = Path(__file__).resolve().parent.parent


def test_drain_rates_come_from_the_first_and_last_tenth_of_the_jobs() -> None:
    # 100 jobs from t=10: ten done by t=11 (10/s), the last ten from t=29 to t=30 (10/s).
    batches = [(11.0, 10), (20.0, 40), (29.0, 40), (30.0, 10)]
    drain = drain_from_batches(10.0, batches)
    assert drain == Drain(jobs=100, start=10.0, first_tenth=11.0, last_tenth=29.0, end=30.0)
    assert (drain.rate, drain.first_rate, drain.last_rate, drain.flatness) == (5.0, 10, 10, 1)


def test_drain_flatness_shows_a_claim_that_slows_down_through_churn() -> None:
    drain = Drain(jobs=1000, start=0.0, first_tenth=1.0, last_tenth=8.0, end=12.0)
    assert (drain.first_rate, drain.last_rate, drain.flatness) == (100, 25, 0.25)


def test_pickup_percentiles_are_nearest_rank_in_milliseconds() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert percentile(seconds, 50) == 0.05
    assert Pickup.of(seconds) == Pickup(p50=50.0, p99=99.0)


@pytest.mark.slow
def test_benchmark_runs_on_a_given_server_and_drops_only_its_own_databases(
    database_url: str, tmp_path: Path
) -> None:
    admin = with_database(database_url, "postgres").replace(
        "postgresql+psycopg://", "postgresql://"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_1_raw")
        conn.execute("CREATE DATABASE bench_1_raw")  # another run's, by its name
    command = [
        sys.executable,
        "-m",
        "bench",
        "--only",
        "enqueue,cycle,handoff,drain",
        "--scale",
        "0.01",
    ]
    run = subprocess.run(
        [*command, "--database-url", admin], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "enqueue, 1 per transaction" in run.stdout
    assert "drain, defaults, sync" in run.stdout
    assert "one cycle (save n outcomes, claim n)" in run.stdout
    assert "hand-off, no-op jobs, 50 threads" in run.stdout
    with psycopg.connect(admin, autocommit=True) as conn:
        left = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        conn.execute("DROP DATABASE bench_1_raw")
    assert "bench_1_raw" in left
    assert not {name for name in left if name.startswith("bench_") and name != "bench_1_raw"}


def test_the_table_floor_compares_the_same_loops_into_both_tables(database_url: str) -> None:
    admin = with_database(database_url, "postgres").replace(
        "postgresql+psycopg://", "postgresql://"
    )
    command = [sys.executable, "-m", "bench.floor", "--rounds", "1", "--each", "20"]
    run = subprocess.run(
        [*command, "--batch", "600", "--database-url", admin],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rate against raw_jobs: jobs" in run.stdout
    assert "enqueue_many against jobs" in run.stdout
    with psycopg.connect(admin, autocommit=True) as conn:
        left = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert not {name for name in left if name.startswith("bench_")}
