"""/metrics: open without METRICS_TOKEN; with it, only `Authorization: Bearer <token>`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from app.config import Settings
from app.web import create_app

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def guarded(settings: Settings, db: Engine) -> Iterator[FlaskClient]:
    """A client of the app with METRICS_TOKEN set."""
    app: Flask = create_app({"TESTING": True}, settings=replace(settings, metrics_token=TOKEN))
    yield app.test_client()
    app.extensions["pillars_engine"].dispose()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_metrics_take_the_bearer_scheme_in_any_case(guarded: FlaskClient, scheme: str) -> None:
    response = guarded.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200 and "pillars_jobs" in response.text


@pytest.mark.parametrize(
    "header",
    [
        TOKEN,  # the bare token, without a scheme
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer{TOKEN}",
        f"Bearer {TOKEN}x",
        "Bearer ",
        "",
    ],
)
def test_metrics_refuse_anything_but_the_bearer_token(guarded: FlaskClient, header: str) -> None:
    assert guarded.get("/metrics", headers={"Authorization": header}).status_code == 401


def test_metrics_without_a_configured_token_are_open(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200
