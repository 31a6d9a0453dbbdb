"""Sessions end when they should: on sign-out everywhere, after a password change, by age."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.web import create_app
from tests.web import sign_up, submit

HOUR = 3600
#: The default lifetimes, spelled out: a session lasts a week, or 12 hours unused.
WEEK = 7 * 24 * HOUR


def copy_cookie(source: FlaskClient, target: FlaskClient) -> None:
    """Give `target` the session cookie of `source`, as a thief with a copy would."""
    cookie = source.get_cookie("session")
    assert cookie is not None
    target.set_cookie("session", cookie.value)


def test_a_cookie_copied_before_sign_out_stops_working_at_sign_out(app: Flask) -> None:
    browser, thief = app.test_client(), app.test_client()
    sign_up(browser, "ada@example.com")
    copy_cookie(browser, thief)
    assert thief.get("/exports").status_code == 200  # the copy works while signed in
    assert submit(browser, "/logout", {}, page="/exports").status_code == 303
    assert thief.get("/exports").status_code == 303
    assert browser.get("/exports").status_code == 303


def test_signing_out_in_one_browser_signs_out_every_browser(app: Flask) -> None:
    laptop, phone = app.test_client(), app.test_client()
    sign_up(laptop, "ada@example.com")
    submit(phone, "/login", {"email": "ada@example.com", "password": "correct horse battery"})
    assert phone.get("/exports").status_code == 200
    submit(laptop, "/logout", {}, page="/exports")
    assert phone.get("/exports").status_code == 303
    # Signing in again starts a session that works.
    submit(phone, "/login", {"email": "ada@example.com", "password": "correct horse battery"})
    assert phone.get("/exports").status_code == 200


def test_a_session_ends_after_its_absolute_lifetime_however_busy(client: FlaskClient) -> None:
    sign_up(client, "ada@example.com")
    with client.session_transaction() as cookie:
        cookie["since"] = (
            cookie.get("since", int(time.time())) - WEEK - 1
        )  # signed in longer ago than the lifetime
    assert client.get("/exports").status_code == 303


def test_a_session_ends_after_being_idle_too_long(client: FlaskClient) -> None:
    sign_up(client, "ada@example.com")
    with client.session_transaction() as cookie:
        cookie["seen"] = cookie.get("seen", int(time.time())) - 12 * HOUR - 1
    assert client.get("/exports").status_code == 303


def test_a_request_keeps_an_idle_session_alive(client: FlaskClient) -> None:
    sign_up(client, "ada@example.com")
    with client.session_transaction() as cookie:
        cookie["seen"] -= 11 * HOUR  # an hour left
    assert client.get("/exports").status_code == 200
    with client.session_transaction() as cookie:
        cookie["seen"] -= 2 * HOUR  # two more hours later: the last request counts
    assert client.get("/exports").status_code == 200


def test_a_cookie_without_the_session_times_is_not_accepted(client: FlaskClient) -> None:
    sign_up(client, "ada@example.com")
    with client.session_transaction() as cookie:
        del cookie["since"]
    assert client.get("/exports").status_code == 303


@pytest.mark.parametrize(
    ("since", "seen", "ended"),
    [
        (0, 0, False),
        (-7 * 24 * HOUR + 1, -HOUR, False),  # nearly a week old, used an hour ago
        (-7 * 24 * HOUR - 1, 0, True),  # over a week old, used just now
        (-HOUR, -12 * HOUR - 1, True),  # idle for over 12 hours
        (-HOUR, -12 * HOUR + 1, False),
        (None, 0, True),
        ("0", 0, True),
    ],
)
def test_session_expired_by_lifetime_and_idle_time(
    since: object, seen: object, ended: bool
) -> None:
    from app.web.users import session_expired

    settings = Settings(database_url="postgresql+psycopg://h/db")
    now = 1_000_000_000
    since = since + now if isinstance(since, int) else since
    seen = seen + now if isinstance(seen, int) else seen
    assert session_expired(since, seen, now, settings) is ended


def test_cookies_are_secure_and_hsts_is_sent_when_the_site_is_https(
    settings: Settings, db: object
) -> None:
    https = replace(settings, site_url="https://pillars.example")
    app = create_app({"TESTING": True}, settings=https)
    try:
        client = app.test_client()
        response = client.get("/signup")  # the form's CSRF token starts a session
        [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        hsts = client.get("/").headers["Strict-Transport-Security"]
        assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31536000
    finally:
        app.extensions["pillars_engine"].dispose()


def test_no_hsts_and_plain_cookies_over_http(client: FlaskClient) -> None:
    response = client.get("/signup")
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "Secure" not in cookie
    assert "Strict-Transport-Security" not in client.get("/").headers
