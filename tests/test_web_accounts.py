"""Accounts through the site: sign up, sign in with a rate limit, sign out, reset a password."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.accounts import change_password, user_for_reset_token
from app.config import Settings
from app.jobs.testing import assert_enqueued, drain, enqueued_jobs
from app.models import Job, LoginAttempt, User
from app.web import create_app
from tests.web import (
    PASSWORD,
    ask_to_sign_up,
    body,
    confirm,
    emailed_link,
    link,
    log_in,
    messages,
    sign_up,
    submit,
)


def count(session: Session, model: type[object]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_signup_creates_an_unconfirmed_user_and_queues_the_welcome_email_together(
    client: FlaskClient, session: Session
) -> None:
    response = ask_to_sign_up(client, "Ada@Example.com ")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    user = session.scalars(select(User)).one()
    assert user.email == "ada@example.com" and PASSWORD not in user.password_hash
    assert user.confirmed_at is None
    assert_enqueued(session, "accounts.send_welcome", {"user_id": user.id})
    assert client.get("/exports").status_code == 303  # not signed in before confirming


def test_the_welcome_email_brings_a_link_that_confirms_once_with_the_password_and_signs_in(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    ask_to_sign_up(app.test_client(), "ada@example.com")
    assert len(drain(db).succeeded) == 1
    [welcome] = messages(mailbox, "ada@example.com")
    assert welcome["Subject"] == "Welcome to Pillars" and "/exports" in body(welcome)
    link_ = link(welcome, "/confirm/")
    generation = session.scalars(select(User.session_generation)).one()
    browser = app.test_client()
    response = confirm(browser, link_)
    assert response.status_code == 303 and response.headers["Location"] == "/exports"
    assert "Your address is confirmed" in browser.get("/exports").get_data(as_text=True)
    user = session.scalars(select(User)).one()
    assert user.confirmed_at is not None
    assert user.session_generation == generation + 1  # any other session ended
    assert app.test_client().get(link_).status_code == 400  # used up
    assert app.test_client().post(link_).status_code == 400
    assert log_in(app.test_client(), "ada@example.com").status_code == 303


def unconfirmed_link(app: Flask, db: Engine, email: str, password: str = PASSWORD) -> str:
    """Sign up with `email` and `password` and return the emailed confirmation link."""
    ask_to_sign_up(app.test_client(), email, password)
    return emailed_link(db, email, "/confirm/")


def test_opening_the_confirmation_link_only_asks_for_the_password(
    app: Flask, db: Engine, session: Session
) -> None:
    link_ = unconfirmed_link(app, db, "ada@example.com")
    client = app.test_client()
    for _ in range(2):  # a mail scanner first, then the person: nothing is used up
        page = client.get(link_)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "Enter the password you chose at sign-up to confirm ada@example.com" in html
        assert 'name="password"' in html and 'name="csrf_token"' in html
        assert re.search(r'Did not sign up, or forgot the password\?\s*<a href="/forgot">', html)
    assert session.scalars(select(User.confirmed_at)).one() is None
    assert client.get("/exports").status_code == 303  # not signed in
    assert count(session, LoginAttempt) == 0
    assert confirm(client, link_).status_code == 303  # the link still works


def test_a_wrong_password_does_not_confirm_and_counts_as_a_failed_sign_in(
    app: Flask, db: Engine, session: Session, settings: Settings
) -> None:
    link_ = unconfirmed_link(app, db, "ada@example.com")
    client = app.test_client()
    response = confirm(client, link_, "not the password")
    assert response.status_code == 400
    assert "That is not the password this account was made with" in response.get_data(as_text=True)
    assert session.scalars(select(User.confirmed_at)).one() is None
    assert client.get("/exports").status_code == 303
    assert session.scalars(select(LoginAttempt.email)).all() == ["ada@example.com"]
    for _ in range(settings.login_max_failures - 1):
        assert confirm(app.test_client(), link_, "not the password").status_code == 400
    # As many guesses as sign-in allows, then the form refuses, even the right password,
    # and sign-in refuses too: the two share one count.
    limited = confirm(client, link_)
    assert limited.status_code == 429 and "Too many failed sign-ins" in limited.get_data(
        as_text=True
    )
    assert session.scalars(select(User.confirmed_at)).one() is None
    assert log_in(app.test_client(), "ada@example.com").status_code == 429


def test_a_strangers_account_on_the_owners_address_is_not_confirmed_by_the_owners_click(
    app: Flask, db: Engine, session: Session
) -> None:
    link_ = unconfirmed_link(app, db, "ada@example.com", "the stranger's password")
    owner = app.test_client()
    assert owner.get(link_).status_code == 200  # the owner clicks the welcome link
    assert confirm(owner, link_, PASSWORD).status_code == 400  # and tries their own password
    assert session.scalars(select(User.confirmed_at)).one() is None
    assert owner.get("/exports").status_code == 303
    stranger = app.test_client()
    assert log_in(stranger, "ada@example.com", "the stranger's password").status_code == 400
    assert stranger.get("/exports").status_code == 303


def test_the_owner_resets_from_the_confirmation_page_which_confirms_and_drops_the_strangers(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    link_ = unconfirmed_link(app, db, "ada@example.com", "the stranger's password")
    owner = app.test_client()
    page = owner.get(link_).get_data(as_text=True)
    forgot = re.search(r'forgot the password\?\s*<a href="([^"]+)">Set a new one', page)
    assert forgot and forgot.group(1) == "/forgot"
    submit(owner, forgot.group(1), {"email": "ada@example.com"})
    drain(db)
    new = {"password": "the owner's password", "confirm": "the owner's password"}
    assert submit(owner, reset_link(mailbox, "ada@example.com"), new).status_code == 303
    assert owner.get("/exports").status_code == 200
    assert session.scalars(select(User.confirmed_at)).one() is not None
    stranger = app.test_client()
    assert log_in(stranger, "ada@example.com", "the stranger's password").status_code == 400
    assert stranger.get("/exports").status_code == 303
    assert app.test_client().get(link_).status_code == 400  # the welcome link is dead too
    assert log_in(app.test_client(), "ada@example.com", "the owner's password").status_code == 303


def test_a_confirmation_link_expires(app: Flask, session: Session, settings: Settings) -> None:
    ask_to_sign_up(app.test_client(), "ada@example.com")
    user = session.scalars(select(User)).one()
    stale = URLSafeTimedSerializer(settings.signing_key, "confirm-address", signer=Issued3DaysAgo)
    token = stale.dumps({"user": user.id, "email": user.email})
    response = app.test_client().get(f"/confirm/{token}")
    assert response.status_code == 400
    assert "does not work any more" in response.get_data(as_text=True)
    assert session.scalars(select(User.confirmed_at)).one() is None
    assert app.test_client().get("/confirm/forged.token").status_code == 400


class Issued3DaysAgo(TimestampSigner):
    """Signs as if the token had been made three days ago: past CONFIRM_MAX_AGE."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 3 * 24 * 3600


def without_csrf(response: TestResponse) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))


def test_signup_answers_alike_for_a_new_and_a_taken_address(app: Flask) -> None:
    new, taken = app.test_client(), app.test_client()
    first = ask_to_sign_up(new, "ada@example.com")  # the address is new
    second = ask_to_sign_up(taken, "ada@example.com", "another password")  # now it is taken
    for response in (first, second):
        for name in ("Set-Cookie", "X-Request-ID"):
            response.headers.remove(name)
    assert (first.status, first.headers, first.data) == (second.status, second.headers, second.data)
    assert first.headers["Location"] == "/login"
    assert without_csrf(new.get("/login")) == without_csrf(taken.get("/login"))


def test_signup_with_a_taken_email_mails_the_holder_and_creates_nothing(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    client = app.test_client()
    response = ask_to_sign_up(client, "ADA@example.com", "another password")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "We sent a message to ada@example.com" in client.get("/login").get_data(as_text=True)
    assert client.get("/exports").status_code == 303  # not signed in as the holder
    assert count(session, User) == 1
    drain(db)
    [attempt] = [m for m in messages(mailbox, "ada@example.com") if "tried" in m["Subject"]]
    assert attempt["Subject"] == "Someone tried to sign up with your address"
    assert "/forgot" in body(attempt) and "/confirm/" not in body(attempt)
    assert log_in(app.test_client(), "ada@example.com", "another password").status_code == 400
    assert log_in(app.test_client(), "ada@example.com").status_code == 303


def test_an_international_domain_is_kept_in_the_form_every_mail_server_takes(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    """Stored as typed, x@bücher.de needed SMTPUTF8 (its welcome failed on every attempt
    against a server without it) and made a broken To header in development."""
    ask_to_sign_up(app.test_client(), "Ada@Bücher.de")
    assert session.scalars(select(User.email)).one() == "ada@xn--bcher-kva.de"
    assert len(drain(db).succeeded) == 1
    [welcome] = messages(mailbox, "ada@xn--bcher-kva.de")
    assert welcome["To"] == "ada@xn--bcher-kva.de"
    confirm(app.test_client(), link(welcome, "/confirm/"))
    assert log_in(app.test_client(), "ada@bücher.de").status_code == 303


def test_an_account_stored_before_addresses_were_kept_in_ascii_is_still_found(
    app: Flask, db: Engine, session: Session
) -> None:
    """Rows keep the spelling they were stored in (code of the previous release may
    still run beside this one): sign-in, sign-up and reset find them under either."""
    sign_up(app.test_client(), "ada@example.com")
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET email = 'ada@bücher.de'"))
    assert log_in(app.test_client(), "Ada@Bücher.de").status_code == 303
    ask_to_sign_up(app.test_client(), "ada@bücher.de", "another password")
    assert count(session, User) == 1


def test_an_encoded_word_is_refused_as_an_address(client: FlaskClient, session: Session) -> None:
    """Mail programs decode =?utf-8?q?ada?=@example.com into another account's address."""
    response = ask_to_sign_up(client, "=?utf-8?q?ada?=@example.com")
    assert response.status_code == 400 and count(session, User) == 0


def test_full_width_letters_in_the_domain_are_the_same_address(
    app: Flask, db: Engine, session: Session
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    ask_to_sign_up(app.test_client(), "ada@ｅｘａｍｐｌｅ.com", "another password")
    assert count(session, User) == 1
    names = session.scalars(select(Job.name).order_by(Job.created_at)).all()
    assert names[-1] == "accounts.send_signup_attempt"


def test_signing_up_again_and_again_with_a_taken_address_mails_its_holder_once(
    app: Flask, session: Session
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for _ in range(3):
        assert ask_to_sign_up(app.test_client(), "ada@example.com").status_code == 303
    names = session.scalars(select(Job.name).order_by(Job.created_at)).all()
    assert names == ["accounts.send_welcome", "accounts.send_signup_attempt"]


def test_an_unconfirmed_account_cannot_sign_in_and_says_no_more_than_a_wrong_password(
    app: Flask, db: Engine, session: Session
) -> None:
    ask_to_sign_up(app.test_client(), "ada@example.com")
    drain(db)
    session.execute(text("DELETE FROM rate_events"))  # as if the mail limit's window had passed
    session.commit()
    wrong = log_in(app.test_client(), "ada@example.com", "not the password")
    assert enqueued_jobs(session, "accounts.send_welcome") == []
    client = app.test_client()
    right = log_in(client, "ada@example.com")
    assert client.get("/exports").status_code == 303  # not signed in
    assert (wrong.status_code, without_csrf(wrong)) == (right.status_code, without_csrf(right))
    assert "follow the link we emailed you" in right.get_data(as_text=True)
    assert count(session, LoginAttempt) == 2  # both count toward the sign-in limit
    assert_enqueued(session, "accounts.send_welcome")  # the right password sent the link again
    log_in(app.test_client(), "ada@example.com")
    assert_enqueued(session, "accounts.send_welcome")  # at most one per ACCOUNT_MAIL_RATE


def test_resetting_the_password_confirms_the_address(
    app: Flask, db: Engine, session: Session, mailbox: Path
) -> None:
    ask_to_sign_up(app.test_client(), "ada@example.com")
    client = app.test_client()
    submit(client, "/forgot", {"email": "ada@example.com"})
    drain(db)
    new = {"password": "a new password", "confirm": "a new password"}
    assert submit(client, reset_link(mailbox, "ada@example.com"), new).status_code == 303
    assert client.get("/exports").status_code == 200
    assert session.scalars(select(User.confirmed_at)).one() is not None
    assert log_in(app.test_client(), "ada@example.com", "a new password").status_code == 303


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Enter your email address."),
        ({"email": "ada@example.com"}, "Choose a password."),
        ({"email": "not-an-address", "password": PASSWORD}, "like name@example.com"),
        ({"email": "ada@example.com", "password": "short"}, "8 to 200 characters"),
        ({"email": "ada\x00@example.com", "password": PASSWORD}, "control characters"),
        ({"email": "ada@exam\rple.com", "password": PASSWORD}, "control characters"),
        ({"email": "ada\u200b@example.com", "password": PASSWORD}, "control characters"),
        ({"email": "a" * 3000 + "@example.com", "password": PASSWORD}, "at most 254"),
        ({"email": "ada@example.com,eve@evil.example", "password": PASSWORD}, "like name@"),
        ({"email": "ada,eve@example.com", "password": PASSWORD}, "like name@"),
        ({"email": '"ada,eve"@example.com', "password": PASSWORD}, "like name@"),
        ({"email": "Eve <eve@evil.example>", "password": PASSWORD}, "like name@"),
    ],
)
def test_signup_with_bad_input_answers_400_with_the_reason(
    client: FlaskClient, session: Session, data: dict[str, object], message: str
) -> None:
    response = submit(client, "/signup", data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert (count(session, User), count(session, Job)) == (0, 0)


def test_a_form_posted_without_its_csrf_token_is_refused(
    client: FlaskClient, session: Session
) -> None:
    response = client.post("/signup", data={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert count(session, User) == 0


def test_login_with_the_right_password_signs_in_and_goes_where_it_was_asked(
    app: Flask,
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    client = app.test_client()
    assert client.get("/exports").headers["Location"] == "/login?next=/exports"
    response = submit(
        client,
        "/login?next=/exports",
        {"email": "ada@example.com", "password": PASSWORD},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/exports"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/%09/evil.example",
        "/%0d/evil.example",
        "/%0a/evil.example",
        "/%00/x",
        "/%5Cevil.example",
        "/\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%e2%80%8b/evil.example",
    ],
)
def test_login_never_redirects_to_another_site(app: Flask, target: str) -> None:
    sign_up(app.test_client(), "ada@example.com")
    client = app.test_client()
    data = {"email": "ada@example.com", "password": PASSWORD}
    response = submit(client, f"/login?next={target}", data, page="/login")
    assert response.status_code == 303 and response.headers["Location"] == "/exports"


@pytest.mark.parametrize("path", ["/login", "/forgot"])
@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("ada\x00@example.com", "control characters"),
        ("ada@example.com\x1b", "control characters"),
        ("a" * 3000 + "@example.com", "at most 254"),
    ],
)
def test_a_control_character_or_huge_email_is_refused_with_400_and_a_message(
    client: FlaskClient, session: Session, path: str, email: str, message: str
) -> None:
    response = submit(client, path, {"email": email, "password": PASSWORD})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(session, Job) == 0


def test_a_refused_sign_in_email_still_counts_as_a_failure(
    client: FlaskClient, session: Session
) -> None:
    for email in ("a" * 3000 + "@example.com", "ada\x00@example.com"):
        assert log_in(client, email).status_code == 400
    rows = session.scalars(select(LoginAttempt)).all()
    assert len(rows) == 2
    assert all(len(r.email) <= 254 and "\x00" not in r.email for r in rows)


def test_a_wrong_password_or_unknown_email_get_the_same_answer(
    app: Flask, session: Session
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    wrong = log_in(app.test_client(), "ada@example.com", "not the password")
    unknown = log_in(app.test_client(), "bob@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "The email or the password is wrong" in response.get_data(as_text=True)
    assert count(session, LoginAttempt) == 2


def test_login_is_refused_after_too_many_failures_in_every_web_process(app: Flask) -> None:
    sign_up(app.test_client(), "ada@example.com")
    for _ in range(app.config["PILLARS_SETTINGS"].login_max_failures):
        assert log_in(app.test_client(), "ada@example.com", "guess").status_code == 400
    other_process = create_app({"TESTING": True})  # its own engine: shares only the database
    try:
        response = log_in(other_process.test_client(), "ada@example.com")
    finally:
        other_process.extensions["pillars_engine"].dispose()
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_forgot_refuses_an_address_with_a_comma_and_sends_nothing(
    app: Flask, session: Session
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    response = submit(app.test_client(), "/forgot", {"email": "ada@example.com,eve@evil.example"})
    assert response.status_code == 400
    assert "like name@example.com" in response.get_data(as_text=True)
    assert session.scalars(select(Job.name)).all() == ["accounts.send_welcome"]  # sent already


def test_logout_takes_a_post_and_signs_out(client: FlaskClient) -> None:
    sign_up(client, "ada@example.com")
    assert client.get("/logout").status_code == 405
    assert submit(client, "/logout", {}, page="/exports").status_code == 303
    assert client.get("/exports").status_code == 303


def reset_link(mailbox: Path, to: str) -> str:
    [message] = [m for m in messages(mailbox, to) if "Reset" in m["Subject"]]
    match = re.search(r"http://[^/]+(/reset/\S+)", body(message))
    assert match
    return match.group(1)


def test_a_forgotten_password_is_reset_by_an_emailed_link_that_works_once(
    app: Flask, db: Engine, mailbox: Path
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    client = app.test_client()
    assert submit(client, "/forgot", {"email": "ada@example.com"}).status_code == 303
    drain(db)
    link = reset_link(mailbox, "ada@example.com")
    new = {"password": "a new password", "confirm": "a new password"}
    assert submit(client, link, new).status_code == 303
    assert log_in(app.test_client(), "ada@example.com", "a new password").status_code == 303
    assert log_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 400
    assert app.test_client().get(link).status_code == 400  # used up


def test_a_reset_link_used_twice_at_once_works_for_one_of_them(
    app: Flask, db: Engine, mailbox: Path, settings: Settings
) -> None:
    """Both uses read the user before either wrote: both were told 'password changed', and
    the first was then signed out by the second."""
    sign_up(app.test_client(), "ada@example.com")
    assert submit(app.test_client(), "/forgot", {"email": "ada@example.com"}).status_code == 303
    drain(db)
    link = reset_link(mailbox, "ada@example.com")
    token = link.removeprefix("/reset/")
    second = app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', second.get(link).text)
    assert csrf
    answers: list[int] = []
    with Session(db) as first:  # the first use, between its read and its commit
        user = user_for_reset_token(first, settings.signing_key, token, lock=True)
        assert user is not None
        change_password(first, user, "the first new password")
        racing = threading.Thread(
            target=lambda: answers.append(
                second.post(
                    link,
                    data={
                        "password": "the second one",
                        "confirm": "the second one",
                        "csrf_token": csrf.group(1),
                    },
                ).status_code
            )
        )
        racing.start()
        time.sleep(0.5)  # the second use is now waiting for the first
        first.commit()
    racing.join(10)
    assert answers == [400]
    assert log_in(app.test_client(), "ada@example.com", "the first new password").status_code == 303


def test_reset_refuses_a_forged_link_and_mismatched_passwords(
    app: Flask, db: Engine, mailbox: Path
) -> None:
    sign_up(app.test_client(), "ada@example.com")
    assert app.test_client().get("/reset/forged.token").status_code == 400
    client = app.test_client()
    submit(client, "/forgot", {"email": "ada@example.com"})
    drain(db)
    link = reset_link(mailbox, "ada@example.com")
    response = submit(client, link, {"password": "a new password", "confirm": "different!"})
    assert response.status_code == 400 and "The two differ." in response.get_data(as_text=True)


def test_forgot_says_the_same_for_an_unknown_address_and_sends_nothing(
    client: FlaskClient, session: Session
) -> None:
    response = submit(client, "/forgot", {"email": "nobody@example.com"})
    assert response.status_code == 303
    assert "If an account uses that address" in client.get("/login").get_data(as_text=True)
    assert count(session, Job) == 0


def test_changing_the_password_signs_out_other_browsers(
    app: Flask, db: Engine, mailbox: Path
) -> None:
    laptop = app.test_client()
    sign_up(laptop, "ada@example.com")
    phone = app.test_client()
    submit(phone, "/forgot", {"email": "ada@example.com"})
    drain(db)
    new = {"password": "a new password", "confirm": "a new password"}
    submit(phone, reset_link(mailbox, "ada@example.com"), new)
    assert phone.get("/exports").status_code == 200
    assert laptop.get("/exports").status_code == 303
