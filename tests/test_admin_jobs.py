"""The job list (filters, keyset pages) and a job's page (masked documents, timeline, errors)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from app.jobs.testing import drain
from tests import factory
from tests.admin import signed_in

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


def listed(page: str) -> list[str]:
    """Job ids on a list page, in the order shown."""
    return re.findall(r'href="/admin/jobs/([0-9a-f-]{36})"', page)


def next_link(page: str) -> str | None:
    found = re.search(r'id="next-page" href="([^"]+)"', page)
    return None if found is None else found.group(1).replace("&amp;", "&")


def test_lists_jobs_newest_first(admin: FlaskClient, db: Engine) -> None:
    ids = [str(factory.row(db, created_at=START + timedelta(minutes=n))) for n in range(3)]
    assert listed(admin.get("/admin/jobs").text) == ids[::-1]


def test_filters_by_state_queue_and_name_together(admin: FlaskClient, db: Engine) -> None:
    wanted = factory.row(db, "test.add", queue="reports", state="failed")
    factory.row(db, "test.add", queue="reports")  # queued
    factory.row(db, "test.add", queue="default", state="failed")
    factory.row(db, "test.noop", {}, queue="reports", state="failed")
    page = admin.get("/admin/jobs?state=failed&queue=reports&name=test.add").text
    assert listed(page) == [str(wanted)]
    assert '<option value="failed" selected>' in page and 'value="reports"' in page


def test_pages_follow_the_cursor_through_every_job_once(admin: FlaskClient, db: Engine) -> None:
    ids = [str(factory.row(db, created_at=START + timedelta(seconds=n))) for n in range(110)]
    ids += [str(factory.row(db, created_at=START)) for _ in range(5)]  # ties broken by id
    factory.row(db, "test.noop", {})  # filtered out on every page
    seen: list[str] = []
    link: str | None = "/admin/jobs?name=test.add"
    pages = 0
    while link:
        page = admin.get(link).text
        seen += listed(page)
        link, pages = next_link(page), pages + 1
        assert link is None or "name=test.add" in link
    assert pages == 3 and len(seen) == len(set(seen)) == 115
    assert set(seen) == set(ids) and seen[0] == ids[109]


def test_a_page_past_the_last_says_nothing_matches(admin: FlaskClient) -> None:
    cursor = quote(str(uuid.UUID(int=0)))
    page = admin.get(f"/admin/jobs?after={cursor}").text
    assert "No jobs match on this page" in page and "« Newest" in page


@pytest.mark.parametrize(
    "query",
    [
        "after=garbage",
        "after=2026-03-01T12:00:00_not-a-uuid",
        f"after=2026-03-01T12:00:00_{uuid.UUID(int=1)}",  # no time zone
        "state=exploded",
        "name=bad%00name",
        "queue=" + "q" * 201,
    ],
)
def test_malformed_filters_and_cursors_are_400(admin: FlaskClient, query: str) -> None:
    response = admin.get(f"/admin/jobs?{query}")
    assert response.status_code == 400


def test_the_bulk_actions_show_only_where_failed_jobs_can_match(admin: FlaskClient) -> None:
    assert "Retry all failed" in admin.get("/admin/jobs?queue=reports").text
    assert "Retry all failed" in admin.get("/admin/jobs?state=failed").text
    assert "Retry all failed" not in admin.get("/admin/jobs?state=succeeded").text


def test_a_job_page_tells_its_whole_story(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(
        db,
        "test.fail",
        {"message": "disk full"},
        queue="reports",
        priority=3,
        max_attempts=2,
        context="export by user 7",
    )
    drain(db)  # the first attempt fails and is retried later
    page = html.unescape(admin.get(f"/admin/jobs/{job_id}").text)
    assert "export by user 7" in page and "priority 3" in page
    assert re.search(r'id="attempts">1 of 2<', page)
    assert "Created</dt><dd>2" in page and "Started</dt><dd>2" in page
    assert "Errors (1)" in page and "RuntimeError: disk full" in page
    assert "Traceback (most recent call last)" in page and "tests/jobs.py" in page
    assert '"message": "disk full"' in page


def test_every_error_is_shown_newest_first(admin: FlaskClient, db: Engine) -> None:
    errors = [
        {
            "attempt": n,
            "at": f"2026-03-01T12:0{n}:00+00:00",
            "worker": "w1",
            "error": f"E{n}",
            "traceback": f"Traceback\n  line {n}",
        }
        for n in (1, 2, 3)
    ]
    job_id = factory.row(db, state="failed", attempts=3, errors=errors)
    page = admin.get(f"/admin/jobs/{job_id}").text
    assert "Errors (3)" in page
    assert page.index("Attempt 3") < page.index("Attempt 2") < page.index("Attempt 1")
    assert "2026-03-01 12:02:00 UTC" in page and "line 2" in page


def test_secrets_are_masked_in_payload_result_and_errors(admin: FlaskClient, db: Engine) -> None:
    job_id = factory.row(db, "test.login", {"user": "ada", "password": "hunter2-secret"})
    drain(db)  # fails: the error quotes the password, which is cut out when stored
    # No test job returns secrets: the result is written by hand.
    with db.begin() as conn:
        conn.execute(
            text("""UPDATE jobs SET result = '{"rows": 3, "access_token": "tok-abc-123",
                    "nested": [{"api_key": "k-999"}]}' WHERE job_id = :id"""),
            {"id": job_id},
        )
    for page in (admin.get(f"/admin/jobs/{job_id}").text, admin.get("/admin/jobs").text):
        assert "hunter2-secret" not in page
        assert "tok-abc-123" not in page and "k-999" not in page
    detail = html.unescape(admin.get(f"/admin/jobs/{job_id}").text)
    assert '"password": "***"' in detail and '"user": "ada"' in detail
    assert '"access_token": "***"' in detail and '"api_key": "***"' in detail
    assert '"rows": 3' in detail and "PermissionError: login refused for ada" in detail


def test_an_unknown_job_is_404_and_a_malformed_id_is_400(admin: FlaskClient) -> None:
    assert admin.get(f"/admin/jobs/{uuid.uuid4()}").status_code == 404
    assert admin.get("/admin/jobs/not-a-job").status_code == 400
    assert admin.get("/admin/jobs/12345").status_code == 400


def test_a_job_page_offers_the_actions_its_state_allows(admin: FlaskClient, db: Engine) -> None:
    def buttons(state: str) -> list[str]:
        page = admin.get(f"/admin/jobs/{factory.row(db, state=state)}").text
        return re.findall(r'/(retry|cancel|delete)"', page)

    assert buttons("queued") == ["cancel", "delete"]
    assert buttons("running") == ["cancel"]
    assert buttons("failed") == ["retry", "delete"]
    assert buttons("cancelled") == ["retry", "delete"]
    assert buttons("succeeded") == ["delete"]


def test_only_a_live_job_page_refreshes_itself(admin: FlaskClient, db: Engine) -> None:
    assert "data-refresh" in admin.get(f"/admin/jobs/{factory.row(db)}").text
    done = factory.row(db, state="succeeded")
    assert "data-refresh" not in admin.get(f"/admin/jobs/{done}").text
