"""/metrics shows what the overview shows: pauses, orphaned names, long transactions, failures
per job name, each schedule's newest occurrence, and a 0 rather than no series at all."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import pause_queue
from tests import factory


def sample(page: str, name: str, labels: str = "") -> float | None:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", page, re.M)
    return None if found is None else float(found.group(1))


def add_worker(db: Engine, names: list[str]) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workers (worker_id, hostname, pid, job_names)"
                " VALUES ('w', 'box', 1, :names)"
            ),
            {"names": names},
        )


def test_an_idle_queue_reports_an_oldest_due_age_of_zero(client: FlaskClient, db: Engine) -> None:
    factory.row(db, queue="mail", state="succeeded")
    with Session(db) as session:
        pause_queue(session, "reports", paused_by="ops")
        session.commit()
    page = client.get("/metrics").text
    assert sample(page, "pillars_queue_oldest_due_seconds", '{queue="mail"}') == 0
    assert sample(page, "pillars_queue_oldest_due_seconds", '{queue="reports"}') == 0


def test_paused_queues_are_one_and_the_others_zero(client: FlaskClient, db: Engine) -> None:
    factory.row(db, queue="mail")
    with Session(db) as session:
        pause_queue(session, "reports", paused_by="ops")
        session.commit()
    page = client.get("/metrics").text
    assert sample(page, "pillars_queue_paused", '{queue="reports"}') == 1
    assert sample(page, "pillars_queue_paused", '{queue="mail"}') == 0


def test_orphaned_names_count_the_queued_jobs_no_live_worker_can_run(
    client: FlaskClient, db: Engine
) -> None:
    add_worker(db, ["test.add"])
    factory.row(db, "test.add")
    for _ in range(2):
        factory.row(db, "test.noop", {})
    page = client.get("/metrics").text
    assert sample(page, "pillars_jobs_orphaned", '{name="test.noop"}') == 2
    assert sample(page, "pillars_jobs_orphaned", '{name="test.add"}') is None


def test_failures_per_job_name_cover_the_last_minutes_and_every_known_name(
    client: FlaskClient, db: Engine
) -> None:
    add_worker(db, ["test.add", "test.noop"])
    now = datetime.now(UTC)
    for _ in range(2):
        factory.row(db, "test.add", state="failed", finished_at=now)
    factory.row(db, "test.fail", {}, state="failed", finished_at=now)
    factory.row(db, "test.fail", {}, state="failed", finished_at=datetime(2020, 1, 1, tzinfo=UTC))
    page = client.get("/metrics").text
    assert sample(page, "pillars_jobs_failed_recent", '{name="test.add"}') == 2
    assert sample(page, "pillars_jobs_failed_recent", '{name="test.fail"}') == 1
    assert sample(page, "pillars_jobs_failed_recent", '{name="test.noop"}') == 0


def test_each_schedule_reports_its_newest_occurrence_so_a_stopped_cron_can_alert(
    client: FlaskClient, db: Engine
) -> None:
    at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state (name, last_run_at) VALUES ('digest', :at), ('gone', :at)"
            ),
            {"at": at},
        )
        conn.execute(text("UPDATE cron_state SET removed_at = now() WHERE name = 'gone'"))
    page = client.get("/metrics").text
    found = sample(page, "pillars_cron_last_run_timestamp_seconds", '{schedule="digest"}')
    assert found == at.timestamp()
    assert 'schedule="gone"' not in page


@pytest.fixture
def open_transaction(db: Engine) -> Iterator[None]:
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_sleep(0.2)"))
            started.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(30)
    yield None
    release.set()
    holder.join()


def test_the_oldest_open_transaction_has_its_age(
    client: FlaskClient, db: Engine, open_transaction: None
) -> None:
    age = sample(client.get("/metrics").text, "pillars_oldest_transaction_seconds")
    assert age is not None and age >= 0.2


def test_with_no_transaction_open_the_age_is_zero_not_missing(
    client: FlaskClient, db: Engine
) -> None:
    assert sample(client.get("/metrics").text, "pillars_oldest_transaction_seconds") is not None
