"""Workers, cron and the site through a real PgBouncer in transaction mode.

A transaction pooler hands each transaction whatever server session is
free: LISTEN, session advisory locks (the life lock), session SETs and
prepared statements stay behind on a session other clients then use. With
`DATABASE_POOL_MODE=transaction` the processes rely on none of them (a
lease instead of the life lock, polling instead of LISTEN) or keep one
session of their own on `DATABASE_DIRECT_URL`; without the setting, a
worker or cron process notices and stops with the reason.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import make_engine
from app.jobs import JobRequest, enqueue, enqueue_many
from app.web import create_app
from tests.pgbouncer import PgBouncer
from tests.processes import start, stop, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    """PgBouncer with pool_mode = transaction in front of the suite's server."""
    pooler = PgBouncer(database_url).start()
    yield pooler
    pooler.remove()


@pytest.fixture
def pooled_url(bouncer: PgBouncer, database_url: str) -> str:
    """The suite's database, reached through PgBouncer."""
    return bouncer.url(str(make_url(database_url).database))


@pytest.fixture
def pooled_env(process_env: dict[str, str], pooled_url: str) -> dict[str, str]:
    """Processes through PgBouncer, configured for it; a stale timeout far past any test
    wait, so a rescue seen here came from a death, not from a frozen heartbeat."""
    return {
        **process_env,
        "DATABASE_URL": pooled_url,
        "DATABASE_POOL_MODE": "transaction",
        "WORKER_STALE_TIMEOUT": "120",
    }


def record_jobs(engine: Engine, ledger: Path, count: int, sleep: float = 0.0) -> None:
    with Session(engine) as session:
        enqueue_many(
            session,
            [
                JobRequest("test.record", {"path": str(ledger), "marker": str(n), "sleep": sleep})
                for n in range(count)
            ],
        )
        session.commit()


def finished(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed')")
            ).scalar_one()
        )


def executions(ledger: Path) -> Counter[str]:
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return Counter(line.split()[0] for line in lines)


def job_row(engine: Engine, job_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).one()


def problems(log: Path) -> list[str]:
    """Log lines that would mean the pooler got in the way."""
    words = ("ERROR", "Traceback", "prepared statement", "database unavailable", "refused")
    return [line for line in log.read_text().splitlines() if any(w in line for w in words)]


def test_a_worker_fleet_drains_every_job_once_through_pgbouncer_in_transaction_mode(
    db: Engine, pooled_env: dict[str, str], bouncer: PgBouncer, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    record_jobs(db, ledger, 300, sleep=0.01)
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    workers = [start("worker.py", pooled_env, "--concurrency", "4", log=log) for log in logs]
    try:
        wait_for(lambda: finished(db) == 300, timeout=120, what="every job to finish")
        with db.connect() as conn:
            leases = conn.execute(text("SELECT lease FROM workers")).scalars().all()
    finally:
        codes = [stop(worker) for worker in workers]
    assert codes == [0, 0, 0]
    assert executions(ledger) == Counter({str(n): 1 for n in range(300)})
    assert leases == [1.0, 1.0, 1.0]  # twice WORKER_HEARTBEAT_INTERVAL, no life lock
    assert [line for log in logs for line in problems(log)] == []
    assert "registered with a lease" in logs[0].read_text()


def test_kill_9_behind_pgbouncer_is_rescued_through_the_lease_not_the_stale_timeout(
    db: Engine, pooled_env: dict[str, str], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    victim = start("worker.py", pooled_env, "--concurrency", "1", log=tmp_path / "victim.log")
    with Session(db) as session:
        job_id = enqueue(session, "test.record", {"path": str(ledger), "marker": "m", "sleep": 4})
        session.commit()
    wait_for(lambda: job_row(db, job_id).state == "running", what="the victim to start the job")
    survivor = start("worker.py", pooled_env, log=tmp_path / "survivor.log")
    try:
        wait_for(lambda: "registered" in (tmp_path / "survivor.log").read_text(), what="survivor")
        victim.kill()
        killed = time.monotonic()
        # Far inside the 120 s stale timeout: only the lease can explain a rescue.
        wait_for(lambda: job_row(db, job_id).attempts == 2, timeout=60, what="the rescue")
        print(f"rescued {time.monotonic() - killed:.1f} s after kill -9 (lease 1 s)")
        wait_for(lambda: job_row(db, job_id).state == "succeeded", timeout=30, what="the rerun")
    finally:
        stop(victim)
        assert stop(survivor) == 0
    assert "died" in job_row(db, job_id).errors[0]["error"]


def test_with_a_direct_url_workers_listen_and_hold_life_locks_behind_pgbouncer(
    db: Engine, pooled_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    # A poll far away: a job done well before it was woken by NOTIFY.
    env = {**pooled_env, "DATABASE_DIRECT_URL": database_url, "WORKER_POLL_INTERVAL": "60"}
    log = tmp_path / "worker.log"
    worker = start("worker.py", env, log=log)
    try:
        wait_for(lambda: "listening" in log.read_text(), what="the worker to listen")
        time.sleep(0.5)  # let it go idle on the wait for a notification
        record_jobs(db, ledger, 1)
        wait_for(lambda: finished(db) == 1, timeout=30, what="a NOTIFY to wake the worker")
        with db.connect() as conn:
            lease = conn.execute(text("SELECT lease FROM workers")).scalar_one()
    finally:
        assert stop(worker) == 0
    assert lease is None
    assert problems(log) == []


def test_a_pgbouncer_restart_loses_nothing(
    db: Engine, pooled_env: dict[str, str], bouncer: PgBouncer, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    total = 400
    record_jobs(db, ledger, total, sleep=0.05)
    workers = [
        start("worker.py", pooled_env, "--concurrency", "4", log=tmp_path / f"w{i}.log")
        for i in range(3)
    ]
    try:
        for _ in range(2):
            wait_for(lambda: finished(db) >= 100, timeout=60, what="work in progress")
            bouncer.restart()
            time.sleep(1.0)
        wait_for(lambda: finished(db) == total, timeout=180, what="every job after the restarts")
    finally:
        codes = [stop(worker) for worker in workers]
    runs = executions(ledger)
    duplicates = sum(count - 1 for count in runs.values())
    print(f"two PgBouncer restarts: {total} jobs, lost 0, {duplicates} run twice")
    assert codes == [0, 0, 0]
    assert set(runs) == {str(n) for n in range(total)}
    with db.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM jobs GROUP BY state")).all()
    states = {state: count for state, count in rows}
    assert states == {"succeeded": total}


def test_a_worker_pointed_at_a_transaction_pooler_without_the_setting_stops_with_the_reason(
    db: Engine, process_env: dict[str, str], pooled_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    record_jobs(db, ledger, 5)
    log = tmp_path / "worker.log"
    worker = start("worker.py", {**process_env, "DATABASE_URL": pooled_url}, log=log)
    try:
        code = worker.wait(60)
    finally:
        stop(worker)
    assert code == 2
    said = log.read_text()
    assert "not a session of its own" in said and "DATABASE_POOL_MODE=transaction" in said
    assert finished(db) == 0 and not ledger.exists()  # it claimed nothing


def test_cron_behind_a_transaction_pooler_runs_with_a_lease_and_stops_without_the_setting(
    db: Engine, process_env: dict[str, str], pooled_env: dict[str, str], tmp_path: Path
) -> None:
    right = start("cron.py", pooled_env, log=tmp_path / "right.log")
    try:
        wait_for(lambda: "registered with a lease" in (tmp_path / "right.log").read_text())
    finally:
        assert stop(right) == 0
    wrong_env = {**process_env, "DATABASE_URL": pooled_env["DATABASE_URL"]}
    wrong = start("cron.py", wrong_env, log=tmp_path / "wrong.log")
    try:
        code = wrong.wait(60)
    finally:
        stop(wrong)
    assert code == 2
    assert "DATABASE_POOL_MODE=transaction" in (tmp_path / "wrong.log").read_text()


def interleave(engine: Engine, rounds: int = 20) -> None:
    """Run one statement over and over on one connection while another holds transactions,
    so PgBouncer hands the first connection's statements to changing server sessions."""
    with engine.connect() as first, engine.connect() as second:
        for n in range(rounds):
            with second.begin():
                second.execute(text("SELECT pg_backend_pid()"))
                first.execute(text("SELECT CAST(:n AS integer)"), {"n": n})
                first.commit()
            first.execute(text("SELECT CAST(:n AS integer)"), {"n": n})
            first.commit()


def test_engines_behind_a_transaction_pooler_prepare_nothing_on_the_server(
    pooled_url: str,
) -> None:
    pooled = Settings.from_env({"DATABASE_URL": pooled_url, "DATABASE_POOL_MODE": "transaction"})
    engine = make_engine(pooled, pool_size=2)
    try:
        interleave(engine)
    finally:
        engine.dispose()
    # Without the setting, psycopg prepares a statement it runs often, on whichever
    # server session ran it: the next run finds another session, without it.
    unprepared = make_engine(Settings.from_env({"DATABASE_URL": pooled_url}), pool_size=2)
    try:
        with pytest.raises(Exception, match="prepared statement"):
            interleave(unprepared)
    finally:
        unprepared.dispose()


def test_the_site_answers_through_pgbouncer_in_transaction_mode(
    db: Engine, pooled_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", pooled_url)
    monkeypatch.setenv("DATABASE_POOL_MODE", "transaction")
    app: Flask = create_app({"TESTING": True})
    try:
        client = app.test_client()
        statuses = Counter(client.get("/readyz").status_code for _ in range(40))
        page = client.get("/signup")
    finally:
        app.extensions["pillars_engine"].dispose()
    assert statuses == Counter({200: 40}) and page.status_code == 200


def pickups(engine: Engine, count: int) -> list[float]:
    """Enqueue `count` jobs to an idle worker; seconds from enqueue to start.

    The pauses between them are random, so a polling worker's next poll is
    anywhere from now to a whole interval away, as for a job in real life.
    """
    seconds = []
    for _ in range(count):
        with Session(engine) as session:
            job_id = enqueue(session, "test.noop", {})
            session.commit()
        row = wait_for(lambda: done(engine, job_id), what="the job")  # noqa: B023
        seconds.append((row.started_at - row.created_at).total_seconds())
        time.sleep(random.uniform(0.05, 1.0))
    return sorted(seconds)


def done(engine: Engine, job_id: uuid.UUID) -> Any:
    row = job_row(engine, job_id)
    return row if row.state == "succeeded" else None


def test_what_each_presence_mode_costs_in_pickup_latency(
    db: Engine,
    process_env: dict[str, str],
    pooled_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    modes = {
        "straight at PostgreSQL (LISTEN)": process_env,
        "PgBouncer + DATABASE_DIRECT_URL (LISTEN)": {
            **pooled_env,
            "DATABASE_DIRECT_URL": database_url,
        },
        "PgBouncer, lease (polling)": pooled_env,
    }
    figures: dict[str, list[float]] = {}
    for label, env in modes.items():
        log = tmp_path / f"{len(figures)}.log"
        worker = start("worker.py", {**env, "WORKER_POLL_INTERVAL": "1"}, log=log)
        try:
            wait_for(lambda: "registered" in log.read_text(), what=label)  # noqa: B023
            time.sleep(0.5)
            figures[label] = pickups(db, 15)
        finally:
            assert stop(worker) == 0
    for label, seconds in figures.items():
        print(
            f"{label}: pickup p50 {seconds[7] * 1000:.1f} ms, "
            f"worst of 15 {seconds[-1] * 1000:.1f} ms (poll 1 s)"
        )
    # Every job was picked up, after it was enqueued by the database's clock.
    assert all(len(seconds) == 15 and seconds[0] >= 0 for seconds in figures.values())
