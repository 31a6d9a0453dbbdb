"""The overview page: counts, throughput chart, oldest due job, processes, warnings, health."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import pause_queue, stats
from app.jobs.counts import Counts
from app.jobs.stats import Overview
from app.web.admin import chart, overview
from app.web.admin.display import duration
from tests import factory
from tests.admin import flashed, post, signed_in
from tests.processes import start, stop, wait_for


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


def row(page: str, first_cell: str) -> str:
    """The table row whose first cell starts with `first_cell`, as text without tags."""
    for found in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = re.sub(r"<[^>]+>", " ", found).split()
        if cells and cells[0] == first_cell:
            return " ".join(cells)
    raise AssertionError(f"no row starting with {first_cell!r}")


def add_worker(db: Engine, worker_id: str, kind: str = "worker", **columns: object) -> None:
    values = {"names": ["test.add", "test.sleep"], "age": 1.0, **columns}
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO workers (worker_id, kind, hostname, pid, queues, concurrency,
                                 job_names, heartbeat_at)
            VALUES (:id, :kind, 'box', 4242, NULL, 4, :names,
                    now() - make_interval(secs => :age))
        """),
            {"id": worker_id, "kind": kind, **values},
        )


def test_counts_jobs_by_state_and_queue(admin: FlaskClient, db: Engine) -> None:
    for _ in range(3):
        factory.row(db, queue="reports")
    factory.row(db, queue="reports", state="failed")
    factory.row(db, queue="default", state="succeeded")
    page = admin.get("/admin/").text
    # columns: waiting queued running succeeded failed cancelled
    assert row(page, "reports").startswith("reports 0 3 0 0 1 0")
    assert row(page, "default").startswith("default 0 0 0 1 0 0")
    assert row(page, "all") == "all 0 3 0 1 1 0"
    assert 'href="/admin/jobs?queue=reports&amp;state=failed"' in page


def test_charts_jobs_finished_and_failed_per_minute_over_the_last_hour(
    admin: FlaskClient, db: Engine
) -> None:
    with db.connect() as conn:
        now = conn.execute(text("SELECT date_trunc('minute', now())")).scalar_one()
    minute = now - timedelta(minutes=5)
    at = minute + timedelta(seconds=20)
    for state in ("succeeded", "succeeded", "succeeded", "failed"):
        factory.row(db, state=state, finished_at=at)
    factory.row(db, state="succeeded", finished_at=now - timedelta(hours=2))  # too old to count
    page = admin.get("/admin/").text
    assert page.count('<g class="minute">') == 60
    hhmm = minute.astimezone(UTC).strftime("%H:%M")
    assert f"<title>{hhmm} UTC: 3 succeeded, 1 failed</title>" in page
    assert "succeeded (3)" in page and "failed (1)" in page


def test_shows_how_long_the_oldest_due_job_has_waited(admin: FlaskClient, db: Engine) -> None:
    assert re.search(r'id="oldest-due">none waiting<', admin.get("/admin/").text)
    # Hours ago, so that a slow machine cannot change the figure shown.
    factory.row(db, run_at=datetime.now(UTC) - timedelta(hours=2, minutes=30))
    factory.row(db, run_at=datetime.now(UTC) + timedelta(hours=1))  # not due: does not count
    assert re.search(r'id="oldest-due">2 h 3\d min<', admin.get("/admin/").text)


def test_lists_live_workers_and_cron_with_heartbeat_and_what_they_run(
    admin: FlaskClient, db: Engine
) -> None:
    add_worker(db, "busy")
    add_worker(db, "idle")
    add_worker(db, "frozen", age=7200.0)
    add_worker(db, "cron-1", kind="cron")
    running = factory.row(db, "test.sleep", {"seconds": 5}, state="running", locked_by="busy")
    page = admin.get("/admin/").text
    processes = page.split('id="processes"')[1].split("</table>")[0]
    assert processes.count("<tr>") == 5  # header and four processes
    assert f'href="/admin/jobs/{running}">test.sleep</a>' in processes
    assert "idle" in processes and "schedules" in processes
    assert re.search(r"2 h 0\d min ago", processes)
    assert processes.count("late") == 1


def test_warns_when_queued_jobs_wait_for_a_name_no_live_worker_knows(
    admin: FlaskClient, db: Engine
) -> None:
    add_worker(db, "w", names=["test.sleep"])
    factory.row(db, "test.add")
    factory.row(db, "test.add")
    factory.row(db, "test.sleep", {"seconds": 1})
    page = admin.get("/admin/").text
    assert "Queued jobs wait for names no live worker knows" in page
    assert ">test.add</a> (2)" in page and ">test.sleep</a>" not in page.split("Processes")[0]


def test_says_so_when_no_process_is_alive(admin: FlaskClient) -> None:
    assert "No worker or cron process is alive" in admin.get("/admin/").text


def test_pause_and_resume_a_queue_from_the_overview(admin: FlaskClient, db: Engine) -> None:
    factory.row(db, queue="reports")
    page = flashed(admin, post(admin, "/admin/queues/pause", {"queue": "reports"}))
    assert "Queue &#39;reports&#39; paused" in page
    assert "reports paused" in row(page, "reports")
    assert "Paused, nothing is claimed from: reports" in page
    with db.connect() as conn:
        paused_by = conn.execute(text("SELECT paused_by FROM queue_pauses")).scalar_one()
    assert paused_by == "root@example.com"
    page = flashed(admin, post(admin, "/admin/queues/resume", {"queue": "reports"}))
    assert "Queue &#39;reports&#39; resumed" in page and "Paused," not in page


def test_a_queue_can_be_paused_before_it_has_jobs(admin: FlaskClient) -> None:
    page = flashed(admin, post(admin, "/admin/queues/pause", {"queue": "later"}))
    assert "later paused" in row(page, "later")


@pytest.mark.parametrize("queue", ["", "   ", "x" * 201, "bad\x00queue"])
def test_pausing_needs_a_real_queue_name(admin: FlaskClient, queue: str) -> None:
    assert post(admin, "/admin/queues/pause", {"queue": queue}).status_code == 400


@pytest.fixture
def open_transaction(db: Engine) -> Iterator[None]:
    """Another client's transaction left open, as a forgotten psql session would be."""
    with db.connect() as conn:
        conn.execute(text("SELECT 1"))
        yield


def test_shows_dead_rows_and_the_oldest_open_transaction(
    admin: FlaskClient, open_transaction: None
) -> None:
    page = admin.get("/admin/").text
    assert "Dead rows in jobs" in page
    facts = page.split("Oldest open transaction</dt>")[1].split("</dd>")[0]
    assert "none open" not in facts and " s" in facts
    assert "Vacuum is not keeping up" not in page and "A transaction has been open" not in page


def test_warns_about_a_long_transaction(
    admin: FlaskClient, open_transaction: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overview, "TRANSACTION_AGE_WARNING", 0.0)
    assert "vacuum cannot remove dead jobs" in admin.get("/admin/").text


def blank(dead: int, live: int, transaction: float | None) -> Overview:
    return Overview(Counts({}, {}), [], None, [], {}, [], dead, live, transaction)


@pytest.mark.parametrize(
    ("dead", "live", "behind"),
    [(0, 0, False), (9_000, 0, False), (15_000, 1_000_000, False), (300_000, 1_000_000, True)],
)
def test_vacuum_is_behind_when_dead_rows_are_many_and_a_large_share(
    app: Flask, dead: int, live: int, behind: bool
) -> None:
    settings = app.config["PILLARS_SETTINGS"]
    assert overview.health(blank(dead, live, None), settings).vacuum_behind is behind


def test_the_chart_scales_to_a_round_number_and_stacks_failed_on_succeeded() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    minutes = [(start + timedelta(minutes=n), n, 1 if n == 59 else 0) for n in range(60)]
    drawn = chart.per_minute(minutes)
    assert [label for _, label in drawn.ticks] == ["0", "50", "100"]
    last = drawn.bars[-1]
    assert last.failed_y + last.failed_height == pytest.approx(last.ok_y)
    assert last.ok_y + last.ok_height == pytest.approx(drawn.baseline)
    assert [label for _, label in drawn.times] == ["12:00", "12:15", "12:30", "12:45", "12:59"]
    assert (drawn.succeeded, drawn.failed) == (sum(range(60)), 1)
    assert [chart.nice_ceiling(n) for n in (0, 1, 3, 10, 11, 240, 501)] == [
        1,
        1,
        5,
        10,
        20,
        500,
        1000,
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.42, "0.4 s"),
        (42, "42 s"),
        (245, "4 min 05 s"),
        (7_380, "2 h 03 min"),
        (90_000, "1 d 1 h"),
    ],
)
def test_ages_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.slow
def test_no_false_alarm_while_a_real_worker_that_knows_the_job_is_running(
    admin: FlaskClient, db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker registers the names it can run, so its queued jobs are not called stranded."""
    with Session(db) as session:
        pause_queue(session, "held", paused_by="test")  # keeps the job queued
        session.commit()
    factory.row(db, "test.add", queue="held")
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        wait_for(lambda: knows(db, "test.add"), timeout=60, what="the worker to register")
        page = admin.get("/admin/").text
        with db.connect() as conn:
            orphaned = stats.orphaned_names(conn)
    finally:
        assert stop(worker) == 0
    assert "no live worker knows" not in page and orphaned == {}
    assert re.search(r"<td>worker</td>", page)


def knows(db: Engine, name: str) -> bool:
    with db.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM workers WHERE kind = 'worker' AND :n = ANY(job_names)"),
            {"n": name},
        ).scalar_one()
    return bool(found)
