"""Where a job came from: kept at enqueue from the context, shown on its dashboard page."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from app import logs
from tests import factory
from tests.admin import signed_in

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    settings = app.config["PILLARS_SETTINGS"]
    template = "https://jaeger.example/trace/{trace_id}"
    app.config["PILLARS_SETTINGS"] = replace(settings, trace_url_template=template)
    return signed_in(app, "root@example.com", admin=True)


def column(db: Engine, job_id: object, name: str) -> object:
    with db.connect() as conn:
        query = text(f"SELECT {name} FROM jobs WHERE job_id = :id")
        return conn.execute(query, {"id": job_id}).scalar_one()


def test_a_job_enqueued_by_a_job_keeps_its_parent_and_request_id(db: Engine) -> None:
    parent = factory.job(db, "test.add")
    with logs.bound(origin=f"job {parent}", request_id="req-9"):
        child = factory.job(db, "test.add")
    assert column(db, child, "origin") == f"job {parent}"
    assert column(db, child, "request_id") == "req-9"
    assert column(db, parent, "origin") is None and column(db, parent, "trace_context") is None


def test_a_hostile_request_id_in_the_context_is_not_stored(db: Engine) -> None:
    with logs.bound(origin="x" * 5000, request_id="evil\r\nid"):
        job_id = factory.job(db, "test.add")
    assert column(db, job_id, "request_id") is None
    assert len(str(column(db, job_id, "origin"))) == 200


def test_the_job_page_shows_the_origin_request_id_and_links_the_trace(
    admin: FlaskClient, db: Engine
) -> None:
    parent = factory.job(db, "test.add")
    with logs.bound(origin=f"job {parent}", request_id="req-9"):
        child = factory.job(db, "test.add")
    with db.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET trace_context = CAST(:tc AS jsonb) WHERE job_id = :id"),
            {"tc": json.dumps({"traceparent": TRACEPARENT}), "id": child},
        )
    page = admin.get(f"/admin/jobs/{child}").text
    assert f'href="/admin/jobs/{parent}"' in page
    assert '<code id="request-id">req-9</code>' in page
    trace_id = TRACEPARENT.split("-")[1]
    assert f'href="https://jaeger.example/trace/{trace_id}"' in page


def test_a_job_from_a_request_shows_the_route_it_came_from(admin: FlaskClient, db: Engine) -> None:
    response = admin.get("/healthz", headers={"X-Request-ID": "abc"})
    assert response.headers["X-Request-ID"] == "abc"
    with logs.bound(origin="request POST /signup", request_id="abc"):
        job_id = factory.job(db, "test.add")
    page = admin.get(f"/admin/jobs/{job_id}").text
    assert '<dd id="origin">request POST /signup</dd>' in page
