"""The sign-in limit: per (address, email) and per email, never per address alone, and proxies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import accounts
from app.config import Settings
from app.web import auth, create_app
from tests.web import PASSWORD, csrf_token, sign_up

FAILURES = Settings.login_max_failures


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits sign-in asked for, recorded instead of slept through."""
    asked: list[float] = []
    monkeypatch.setattr(auth, "pause", asked.append, raising=False)
    return asked


def log_in_from(
    client: FlaskClient, address: str, email: str, password: str = PASSWORD, **headers: str
) -> int:
    """Sign in from client address `address` (the socket's peer); return the status."""
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )
    return response.status_code


def test_many_failures_from_one_address_slow_answers_but_never_refuse_a_right_password(
    app: Flask, pauses: list[float]
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    office = "198.51.100.7"  # one proxy, or one office, in front of many people
    for n in range(FAILURES * 4 + 3):
        assert log_in_from(app.test_client(), office, f"typo{n}@example.com", "x") == 400
    assert log_in_from(app.test_client(), office, "ada@example.com") == 303
    assert pauses, "answers to an address with that many failures are slowed down"
    assert all(0 < p <= Settings.login_slowdown_max for p in pauses)
    assert pauses == sorted(pauses)  # each further failure waits longer, up to the cap


def test_answers_are_not_slowed_for_an_address_with_few_failures(
    app: Flask, pauses: list[float]
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for _ in range(FAILURES - 1):
        log_in_from(app.test_client(), "198.51.100.7", "ada@example.com", "x")
    assert log_in_from(app.test_client(), "198.51.100.7", "ada@example.com") == 303
    assert pauses == []


def test_one_address_is_refused_for_one_email_after_too_many_failures(app: Flask) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for _ in range(FAILURES):
        assert log_in_from(app.test_client(), "198.51.100.7", "ada@example.com", "x") == 400
    assert log_in_from(app.test_client(), "198.51.100.7", "ada@example.com") == 429
    # Another address, and another email from the same address, are not refused.
    assert log_in_from(app.test_client(), "203.0.113.9", "ada@example.com") == 303
    assert log_in_from(app.test_client(), "198.51.100.7", "bob@example.com", "x") == 400


def test_one_email_is_refused_after_failures_from_many_addresses(app: Flask) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for n in range(FAILURES * 4):
        address = f"203.0.113.{n}"
        assert log_in_from(app.test_client(), address, "ada@example.com", "x") == 400
    assert log_in_from(app.test_client(), "192.0.2.1", "ada@example.com") == 429


@pytest.fixture
def behind_proxy(settings: Settings, db: Engine) -> Iterator[Flask]:
    """The app told that one proxy stands in front of it."""
    app = create_app({"TESTING": True}, settings=replace(settings, trusted_proxy_hops=1))
    yield app
    app.extensions["pillars_engine"].dispose()


def test_behind_a_trusted_proxy_each_client_is_counted_by_its_own_address(
    behind_proxy: Flask,
) -> None:
    app, proxy = behind_proxy, "10.0.0.2"
    sign_up(app.test_client(), "ada@example.com")
    for _ in range(FAILURES):
        status = log_in_from(
            app.test_client(), proxy, "ada@example.com", "x", **{"X-Forwarded-For": "192.0.2.66"}
        )
        assert status == 400
    guesser = {"X-Forwarded-For": "192.0.2.66"}
    assert log_in_from(app.test_client(), proxy, "ada@example.com", **guesser) == 429
    owner = {"X-Forwarded-For": "198.51.100.20"}
    assert log_in_from(app.test_client(), proxy, "ada@example.com", **owner) == 303


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app: Flask) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for n in range(FAILURES):
        spoofed = {"X-Forwarded-For": f"192.0.2.{n}"}
        status = log_in_from(app.test_client(), "198.51.100.7", "ada@example.com", "x", **spoofed)
        assert status == 400
    fresh = {"X-Forwarded-For": "192.0.2.200"}
    assert log_in_from(app.test_client(), "198.51.100.7", "ada@example.com", **fresh) == 429


def test_sign_in_delay_grows_with_failures_and_stops_at_the_cap(
    session: Session, settings: Settings
) -> None:
    address, delays = "198.51.100.7", []
    for n in range(FAILURES * 4 + 12):
        delays.append(accounts.sign_in_delay(session, settings, address))
        accounts.record_failed_sign_in(session, f"n{n}@example.com", address)
        session.flush()
    assert delays[: FAILURES * 4] == [0.0] * (FAILURES * 4)
    assert delays[FAILURES * 4] > 0
    assert max(delays) == settings.login_slowdown_max
    assert delays == sorted(delays)
