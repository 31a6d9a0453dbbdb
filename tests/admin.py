"""Driving /admin through Flask's test client: an admin's browser, its POSTs, jobs in any state."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.jobs import enqueue
from app.jobs.ids import job_id_at
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


def add_job(
    engine: Engine,
    name: str = "test.add",
    payload: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    **columns: Any,
) -> uuid.UUID:
    """Enqueue a job and then set any columns (state, errors, result...) as a test needs."""
    with Session(engine) as session:
        job_id = enqueue(
            session, name, {"a": 1, "b": 2} if payload is None else dict(payload), queue=queue
        )
        session.commit()
    if "created_at" in columns:  # ids sort by creation time: back-date the id too
        columns["job_id"] = job_id_at(columns["created_at"].timestamp())
    if columns:
        documents = {k: json.dumps(v) for k, v in columns.items() if isinstance(v, dict | list)}
        assignments = ", ".join(
            f"{k} = CAST(:{k} AS jsonb)" if k in documents else f"{k} = :{k}" for k in columns
        )
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE jobs SET {assignments} WHERE job_id = :old_id"),
                {**columns, **documents, "old_id": job_id},
            )
    return uuid.UUID(str(columns.get("job_id", job_id)))


def state_of(engine: Engine, job_id: uuid.UUID) -> str | None:
    with engine.connect() as conn:
        found: str | None = conn.execute(
            text("SELECT state FROM jobs WHERE job_id = :id"), {"id": job_id}
        ).scalar_one_or_none()
    return found
