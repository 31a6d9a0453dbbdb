"""The web pillar's skeleton: the factory and the health probe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.web import create_app


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app, configured for tests."""
    yield create_app({"TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


def test_healthz_answers_without_touching_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
