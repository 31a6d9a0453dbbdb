"""Acting on jobs from the dashboard: retry, cancel, delete, in bulk, with a message each time."""

from __future__ import annotations

import html
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests import factory
from tests.admin import flashed, post, signed_in, state_of


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


def act(admin: FlaskClient, job_id: uuid.UUID, action: str) -> tuple[str, str]:
    """POST an action on one job; return where it redirected and the page there, unescaped."""
    response = post(admin, f"/admin/jobs/{job_id}/{action}")
    return response.headers.get("Location", ""), html.unescape(flashed(admin, response))


def test_retry_queues_a_failed_job_again_now(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db, state="failed", attempts=3, max_attempts=3)
    location, page = act(admin, job_id, "retry")
    assert location == f"/admin/jobs/{job_id}"
    assert f"Job {job_id} (test.add) queued again, to run now." in page
    assert state_of(db, job_id) == "queued"
    with db.connect() as conn:
        row = conn.execute(
            text("SELECT max_attempts, run_at <= now() AS due FROM jobs WHERE job_id = :id"),
            {"id": job_id},
        ).one()
    assert row.max_attempts == 4 and row.due  # one more attempt, due at once


def test_retry_refuses_a_job_that_is_not_failed_or_cancelled(
    admin: FlaskClient, db: Engine
) -> None:
    job_id = factory.row(db, state="running")
    _, page = act(admin, job_id, "retry")
    assert f"Job {job_id} (test.add) is running: only failed or cancelled jobs" in page
    assert state_of(db, job_id) == "running"


def test_cancel_stops_a_queued_job(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db)
    _, page = act(admin, job_id, "cancel")
    assert f"Job {job_id} (test.add) cancelled." in page
    assert state_of(db, job_id) == "cancelled"


def test_cancel_refuses_a_finished_job(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db, state="succeeded")
    _, page = act(admin, job_id, "cancel")
    assert "is succeeded: only queued or running jobs can be cancelled." in page
    assert state_of(db, job_id) == "succeeded"


def test_delete_removes_the_job_and_returns_to_the_list(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db, state="failed")
    location, page = act(admin, job_id, "delete")
    assert location == "/admin/jobs" and f"Job {job_id} (test.add) deleted." in page
    assert state_of(db, job_id) is None


def test_delete_refuses_a_running_job(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db, state="running")
    location, page = act(admin, job_id, "delete")
    assert location == f"/admin/jobs/{job_id}"
    assert "is running: a running job cannot be deleted; cancel it first." in page
    assert state_of(db, job_id) == "running"


@pytest.mark.parametrize("action", ["retry", "cancel", "delete"])
def test_acting_on_an_unknown_job_is_404_and_on_a_malformed_id_400(
    admin: FlaskClient, action: str
) -> None:
    assert post(admin, f"/admin/jobs/{uuid.uuid4()}/{action}").status_code == 404
    assert post(admin, f"/admin/jobs/nonsense/{action}").status_code == 400


def failed_jobs(db: Engine) -> dict[str, uuid.UUID]:
    """Failed jobs in two queues under two names, and one succeeded job."""
    return {
        "reports/add": factory.row(db, queue="reports", state="failed"),
        "reports/add2": factory.row(db, queue="reports", state="failed"),
        "reports/noop": factory.row(db, "test.noop", {}, queue="reports", state="failed"),
        "default/add": factory.row(db, queue="default", state="failed"),
        "done": factory.row(db, queue="reports", state="succeeded"),
    }


def test_bulk_retry_queues_every_failed_job_matching_the_filter(
    admin: FlaskClient, db: Engine
) -> None:
    jobs = failed_jobs(db)
    response = post(admin, "/admin/jobs/failed/retry", {"queue": "reports", "name": "test.add"})
    assert response.headers["Location"] == "/admin/jobs?queue=reports&name=test.add"
    page = html.unescape(flashed(admin, response))
    assert "2 failed jobs in queue 'reports' named 'test.add' queued again." in page
    states = {key: state_of(db, job_id) for key, job_id in jobs.items()}
    assert states == {
        "reports/add": "queued",
        "reports/add2": "queued",
        "reports/noop": "failed",
        "default/add": "failed",
        "done": "succeeded",
    }


def test_bulk_delete_without_a_filter_deletes_every_failed_job_and_nothing_else(
    admin: FlaskClient, db: Engine
) -> None:
    jobs = failed_jobs(db)
    page = flashed(admin, post(admin, "/admin/jobs/failed/delete"))
    assert "4 failed jobs deleted." in page
    assert [key for key, job_id in jobs.items() if state_of(db, job_id)] == ["done"]


def test_bulk_actions_say_so_when_nothing_matches(admin: FlaskClient) -> None:
    page = html.unescape(flashed(admin, post(admin, "/admin/jobs/failed/retry", {"queue": "x"})))
    assert "0 failed jobs in queue 'x' queued again." in page


def test_bulk_actions_refuse_a_malformed_filter(admin: FlaskClient) -> None:
    response = post(admin, "/admin/jobs/failed/delete", {"name": "a\x00b"})
    assert response.status_code == 400
