"""The site as a whole: health probes, the front page, error pages, nothing from elsewhere."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings, normalize_database_url
from app.web import create_app
from tests.database import alembic_config, create_database, with_database
from tests.web import sign_up


def test_healthz_answers_without_touching_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ok_when_the_database_is_at_the_newest_migration(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.fixture
def app_on(settings: Settings) -> Iterator[list[Flask]]:
    """Apps on other databases; their engines are closed after the test."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        app.extensions["pillars_engine"].dispose()


def test_readyz_is_503_before_the_migrations_have_run(
    database_url: str, settings: Settings, app_on: list[Flask]
) -> None:
    admin = with_database(database_url, "postgres").replace("+psycopg", "")
    create_database(admin, "pillars_behind")
    behind = normalize_database_url(with_database(database_url, "pillars_behind"))
    try:
        command.upgrade(alembic_config(behind), "291ad41cadeb")
    finally:
        os.environ["DATABASE_URL"] = database_url
    app_on.append(create_app(settings=replace(settings, database_url=behind)))
    response = app_on[0].test_client().get("/readyz")
    assert response.status_code == 503
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert f"code expects {head}" in response.get_json()["reason"]


def test_readyz_is_503_when_the_database_is_unreachable(
    settings: Settings, app_on: list[Flask]
) -> None:
    gone = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
    app_on.append(create_app(settings=replace(settings, database_url=gone)))
    response = app_on[0].test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "database unreachable"}


def test_the_front_page_invites_visitors_to_sign_up(client: FlaskClient) -> None:
    page = client.get("/").text
    assert 'href="/signup"' in page and 'href="/login"' in page


@pytest.mark.parametrize("path", ["/", "/signup", "/login", "/forgot", "/exports"])
def test_pages_load_nothing_from_other_sites(client: FlaskClient, path: str) -> None:
    if path == "/exports":
        sign_up(client, "ada@example.com")
    response = client.get(path)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/") for s in sources), sources


def test_the_stylesheet_and_script_are_served_from_the_site(client: FlaskClient) -> None:
    for name in ("style.css", "export.js"):
        with client.get(f"/static/{name}") as response:  # closes the file it streams
            assert response.status_code == 200


def test_an_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "There is nothing here" in response.text
