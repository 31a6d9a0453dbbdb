"""Rate limits on uploads, sign-ups, reset links: exact across processes, 429 with Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.accounts import ratelimit
from app.accounts.jobs import prune_login_attempts
from app.config import Rate, Settings
from app.jobs.testing import drain
from app.models import Export, Job, RateEvent, User
from app.web import create_app
from tests import factory
from tests.web import PASSWORD, ask_to_sign_up, messages, sign_up, submit, upload


@pytest.fixture
def strict(settings: Settings, db: Engine) -> Iterator[Flask]:
    """The app with low limits, so a test reaches them in a few requests."""
    low = replace(
        settings,
        upload_rate_per_user=Rate(3, 3600),
        upload_rate_per_address=Rate(5, 3600),
        signup_rate_per_address=Rate(3, 3600),
        forgot_rate_per_address=Rate(4, 3600),
    )
    app = create_app({"TESTING": True}, settings=low)
    yield app
    app.extensions["pillars_engine"].dispose()


def count(session: Session, model: type[object]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def from_address(client: FlaskClient, address: str) -> FlaskClient:
    client.environ_base["REMOTE_ADDR"] = address
    return client


def assert_429(response: TestResponse, words: str) -> None:
    assert response.status_code == 429, response.status_code
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert words in page and "Try again in" in page


def test_uploads_answer_429_with_retry_after_past_the_per_user_rate(
    strict: Flask, session: Session
) -> None:
    client = strict.test_client()
    sign_up(client, "ada@example.com")
    for _ in range(3):
        assert upload(client).status_code == 303
    assert_429(upload(client), "You uploaded many files")
    assert count(session, Export) == 3


def test_refused_uploads_count_toward_the_rate_too(strict: Flask, session: Session) -> None:
    client = strict.test_client()
    sign_up(client, "ada@example.com")
    for _ in range(3):
        assert upload(client, b"", "empty.csv").status_code == 400
    assert_429(upload(client), "You uploaded many files")
    assert count(session, Export) == 0


def test_uploads_from_one_address_are_limited_across_users(strict: Flask, session: Session) -> None:
    for n in range(2):
        client = from_address(strict.test_client(), "198.51.100.7")
        sign_up(client, f"user{n}@example.com")
        for _ in range(3 if n == 0 else 2):
            assert upload(client).status_code == 303
    assert_429(upload(client), "from your network")
    elsewhere = from_address(strict.test_client(), "203.0.113.1")
    sign_up(elsewhere, "bob@example.com")
    assert upload(elsewhere).status_code == 303


def test_sign_ups_from_one_address_are_limited(strict: Flask, session: Session) -> None:
    for n in range(3):
        client = from_address(strict.test_client(), "198.51.100.7")
        assert ask_to_sign_up(client, f"user{n}@example.com").status_code == 303
    client = from_address(strict.test_client(), "198.51.100.7")
    assert_429(
        ask_to_sign_up(client, "one-more@example.com"), "accounts were made from your network"
    )
    assert count(session, User) == 3
    other = from_address(strict.test_client(), "203.0.113.1")
    assert ask_to_sign_up(other, "one-more@example.com").status_code == 303


def test_sign_ups_from_one_ipv6_network_are_limited_whatever_the_address(
    strict: Flask, session: Session
) -> None:
    """Anyone on IPv6 picks any address of their /64: counted per address, sign-ups
    mailed arbitrary people at any rate."""
    for n in range(3):
        client = from_address(strict.test_client(), f"2001:db8:1:2::{n + 1}")
        assert ask_to_sign_up(client, f"user{n}@example.com").status_code == 303
    client = from_address(strict.test_client(), "2001:db8:1:2:ffff::9")
    assert_429(
        ask_to_sign_up(client, "one-more@example.com"), "accounts were made from your network"
    )
    other = from_address(strict.test_client(), "2001:db8:1:3::1")
    assert ask_to_sign_up(other, "one-more@example.com").status_code == 303


def test_forgot_from_one_address_is_limited_whatever_the_email(
    strict: Flask, session: Session
) -> None:
    client = from_address(strict.test_client(), "198.51.100.7")
    for n in range(4):
        assert submit(client, "/forgot", {"email": f"n{n}@example.com"}).status_code == 303
    assert_429(submit(client, "/forgot", {"email": "x@example.com"}), "reset links")


def test_reset_links_go_out_at_most_once_per_account_in_a_while_and_the_answer_is_the_same(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    answers = set()
    for _ in range(5):
        response = submit(app.test_client(), "/forgot", {"email": "ada@example.com"})
        answers.add((response.status_code, response.headers["Location"]))
    unknown = submit(app.test_client(), "/forgot", {"email": "nobody@example.com"})
    answers.add((unknown.status_code, unknown.headers["Location"]))
    assert answers == {(303, "/login")}
    drain(db)
    resets = [m for m in messages(mailbox, "ada@example.com") if "Reset" in m["Subject"]]
    assert len(resets) == 1


def test_sign_ups_with_a_taken_address_never_hold_back_its_holders_reset_link(
    app: Flask, db: Engine, mailbox: Path
) -> None:
    """Anyone can set off a 'someone tried to sign up' notice; sharing the reset link's
    budget, one every five minutes kept the holder from ever getting a link."""
    sign_up(app.test_client(), "ada@example.com")
    drain(db)
    ask_to_sign_up(app.test_client(), "ada@example.com", "an attacker's password")
    submit(app.test_client(), "/forgot", {"email": "ada@example.com"})
    drain(db)
    subjects = [m["Subject"] for m in messages(mailbox, "ada@example.com")]
    assert "Someone tried to sign up with your address" in subjects
    assert any("Reset" in subject for subject in subjects)


def test_a_reset_link_can_be_asked_for_again_once_the_last_one_expired_from_the_rate(
    app: Flask, session: Session
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    submit(app.test_client(), "/forgot", {"email": "ada@example.com"})
    session.execute(text("UPDATE rate_events SET expires_at = now() - interval '1 second'"))
    session.commit()
    submit(app.test_client(), "/forgot", {"email": "ada@example.com"})
    sent = session.scalars(select(Job.name).where(Job.name == "accounts.send_password_reset"))
    assert len(sent.all()) == 2


def test_the_limit_is_exact_when_many_processes_count_at_once(db: Engine) -> None:
    rate, attempts = Rate(5, 3600), 24
    allowed: list[bool] = []
    start = threading.Barrier(attempts)

    def attempt() -> None:
        with Session(db) as session:  # each its own connection, like separate processes
            start.wait()
            try:
                ratelimit.hit(session, [("upload-user:1", rate), ("upload-addr:a", Rate(99, 60))])
            except ratelimit.RateLimited:
                allowed.append(False)
            else:
                session.commit()
                allowed.append(True)

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 5 and allowed.count(False) == attempts - 5


def test_a_refused_hit_counts_under_no_key(session: Session) -> None:
    full, spare = ("k:full", Rate(1, 60)), ("k:spare", Rate(5, 60))
    ratelimit.hit(session, [full])
    with pytest.raises(ratelimit.RateLimited) as refused:
        ratelimit.hit(session, [spare, full])
    assert refused.value.key == "k:full" and 1 <= refused.value.retry_after <= 61
    keys = session.scalars(select(RateEvent.key)).all()
    assert keys == ["k:full"]


def test_the_hourly_chore_prunes_expired_rate_events(
    db: Engine, session: Session, settings: Settings
) -> None:
    ratelimit.hit(session, [("old", Rate(5, 60)), ("new", Rate(5, 60))])
    session.execute(text("UPDATE rate_events SET expires_at = now() WHERE key = 'old'"))
    session.commit()
    prune_login_attempts(factory.context(db, settings))
    assert session.scalars(select(RateEvent.key)).all() == ["new"]


def test_a_sign_up_with_a_taken_address_counts_toward_the_address_rate(
    strict: Flask, session: Session
) -> None:
    client = from_address(strict.test_client(), "198.51.100.7")
    for _ in range(3):
        assert ask_to_sign_up(client, "ada@example.com", PASSWORD).status_code == 303
    assert_429(ask_to_sign_up(client, "ada@example.com"), "accounts were made")
