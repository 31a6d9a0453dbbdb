"""Driving /admin through Flask's test client: an admin's browser, its POSTs, jobs in any state."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug.test import TestResponse

from tests.web import sign_up

#: What a browser on the test client's own site sends with every POST.
SAME_ORIGIN = {"Origin": "http://localhost"}


def signed_in(app: Flask, email: str, *, admin: bool) -> FlaskClient:
    """A browser signed in as `email`; made an admin directly in the database when asked.

    The welcome email the sign-up queued is deleted, so a test sees only its own jobs.
    """
    client = app.test_client()
    sign_up(client, email)
    with app.extensions["pillars_engine"].begin() as conn:
        conn.execute(
            text("UPDATE users SET is_admin = :a WHERE email = :e"), {"a": admin, "e": email}
        )
        conn.execute(text("DELETE FROM jobs WHERE name = 'accounts.send_welcome'"))
    return client


def token(client: FlaskClient, page: str = "/admin/") -> str:
    html = client.get(page).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def post(
    client: FlaskClient,
    path: str,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] = SAME_ORIGIN,
) -> TestResponse:
    """POST as the dashboard's own forms do: CSRF token and this site's Origin."""
    form = {**(data or {}), "csrf_token": token(client)}
    return client.post(path, data=form, headers=dict(headers))


def flashed(client: FlaskClient, response: TestResponse) -> str:
    """Follow an action's 303 and return the page it leads to (with the flash message)."""
    assert response.status_code == 303, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def state_of(engine: Engine, job_id: uuid.UUID) -> str | None:
    with engine.connect() as conn:
        found: str | None = conn.execute(
            text("SELECT state FROM jobs WHERE job_id = :id"), {"id": job_id}
        ).scalar_one_or_none()
    return found
