"""Who reaches /admin: admins only, and only through this site's own pages."""

from __future__ import annotations

import re
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from tests import factory
from tests.admin import post, signed_in, state_of, token
from tests.web import csrf_token

PAGES = ["/admin/", "/admin/jobs", "/admin/jobs/{job}", "/admin/cron"]
ACTIONS = [
    "/admin/jobs/{job}/retry",
    "/admin/jobs/{job}/cancel",
    "/admin/jobs/{job}/delete",
    "/admin/jobs/failed/retry",
    "/admin/jobs/failed/delete",
    "/admin/queues/pause",
    "/admin/queues/resume",
    "/admin/cron/pillars.prune_jobs/run",
]


@pytest.fixture
def job(db: Engine) -> uuid.UUID:
    """A failed job: every action could touch it."""
    return factory.row(db, state="failed", finished_at=None, attempts=1)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


@pytest.mark.parametrize("page", PAGES)
def test_visitors_who_are_not_signed_in_are_sent_to_sign_in(
    client: FlaskClient, job: uuid.UUID, page: str
) -> None:
    response = client.get(page.format(job=job))
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=/admin")


@pytest.mark.parametrize("action", ACTIONS)
def test_visitors_who_are_not_signed_in_cannot_act(
    client: FlaskClient, db: Engine, job: uuid.UUID, action: str
) -> None:
    form = {"csrf_token": csrf_token(client, "/login"), "queue": "default"}
    response = client.post(
        action.format(job=job), data=form, headers={"Origin": "http://localhost"}
    )
    assert response.status_code == 303 and "/login" in response.headers["Location"]
    assert state_of(db, job) == "failed"


@pytest.mark.parametrize("page", PAGES)
def test_signed_in_users_who_are_not_admins_find_nothing_there(
    app: Flask, job: uuid.UUID, page: str
) -> None:
    ada = signed_in(app, "ada@example.com", admin=False)
    response = ada.get(page.format(job=job))
    assert response.status_code == 404
    assert "job" not in response.text.lower()


@pytest.mark.parametrize("action", ACTIONS)
def test_signed_in_users_who_are_not_admins_cannot_act(
    app: Flask, db: Engine, job: uuid.UUID, action: str
) -> None:
    ada = signed_in(app, "ada@example.com", admin=False)
    form = {"csrf_token": csrf_token(ada, "/exports"), "queue": "default"}
    response = ada.post(action.format(job=job), data=form, headers={"Origin": "http://localhost"})
    assert response.status_code == 404
    assert state_of(db, job) == "failed"


@pytest.mark.parametrize("action", ACTIONS)
def test_a_post_without_csrf_token_is_refused(
    admin: FlaskClient, db: Engine, job: uuid.UUID, action: str
) -> None:
    response = admin.post(
        action.format(job=job), data={"queue": "default"}, headers={"Origin": "http://localhost"}
    )
    assert response.status_code == 400 and "Form expired" in response.text
    assert state_of(db, job) == "failed"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://localhost"},  # same host, other scheme: another origin
        {"Origin": "http://localhost:8080"},
        {"Origin": "https://evil.example", "Referer": "http://localhost/admin/"},
        {"Referer": "https://evil.example/admin/"},
        {},
    ],
    ids=["foreign", "null", "scheme", "port", "origin-wins", "foreign-referer", "neither"],
)
def test_a_post_from_another_site_or_of_unknown_origin_is_refused(
    admin: FlaskClient, db: Engine, job: uuid.UUID, headers: dict[str, str]
) -> None:
    response = post(admin, f"/admin/jobs/{job}/retry", headers=headers)
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert state_of(db, job) == "failed"


def test_without_origin_a_referer_from_this_site_is_accepted(
    admin: FlaskClient, db: Engine, job: uuid.UUID
) -> None:
    headers = {"Referer": f"http://localhost/admin/jobs/{job}"}
    response = post(admin, f"/admin/jobs/{job}/retry", headers=headers)
    assert response.status_code == 303
    assert state_of(db, job) == "queued"


def test_the_admin_link_shows_for_admins_only(app: Flask, admin: FlaskClient) -> None:
    ada = signed_in(app, "ada@example.com", admin=False)
    assert 'href="/admin/"' in admin.get("/exports").text
    assert 'href="/admin/"' not in ada.get("/exports").text


@pytest.mark.parametrize("page", PAGES)
def test_admin_pages_load_nothing_from_elsewhere_and_run_no_inline_code(
    admin: FlaskClient, job: uuid.UUID, page: str
) -> None:
    response = admin.get(page.format(job=job))
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href|action)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert not re.search(r"<script(?![^>]*\ssrc=)", response.text), "inline script"
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", response.text), "inline style or handler"
    assert token(admin, page.format(job=job))
