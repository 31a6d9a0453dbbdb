"""Mail jobs for accounts, and the chore that forgets old failed sign-ins and rate events.

Run by the worker, never by a request: a slow mail server delays an email,
not a page. Each message is keyed by its job id (see `app.mail`).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete
from sqlalchemy.orm import Session

from app import mail
from app.accounts import ratelimit
from app.accounts.service import seconds_ago
from app.accounts.tokens import (
    CONFIRM_MAX_AGE,
    CONFIRM_PATH,
    RESET_MAX_AGE,
    RESET_PATH,
    confirm_token,
    reset_token,
)
from app.jobs import JobContext, job
from app.models import LoginAttempt, User

log = logging.getLogger(__name__)

WELCOME = """Welcome to Pillars, {email}.

Follow this link within {hours} hours and enter the password you chose at
sign-up to confirm your address and sign in:

{link}

Then upload a CSV at {site}/exports and we will build you a report with
summary statistics and a chart. We email you when it is ready.

If you did not sign up, ignore this email: without the link and that
password, the account cannot be used. To take the address over, set a new
password at {site}/forgot instead.
"""

RESET = """Someone (we hope you) asked to reset the password for {email}.

Set a new password here within {minutes} minutes:

{link}

If it was not you, ignore this email: your password stays as it is.
"""

SIGNUP_ATTEMPT = """Someone (perhaps you) tried to sign up for Pillars with {email}.

This address has an account already, so nothing was changed. To sign in:

{site}/login

Forgot the password? Ask for a new one at {site}/forgot
If it was not you, ignore this email.
"""


def _user(engine: Engine, user_id: int) -> User | None:
    with Session(engine) as session:
        return session.get(User, user_id)


@job("accounts.send_welcome", queue="mail", max_attempts=5, timeout=mail.SEND_TIMEOUT)
def send_welcome(user_id: int, ctx: JobContext) -> None:
    """Email a new user the link that confirms their address (sent again on a sign-in
    with the right password before that); does nothing if the account is gone or
    confirmed by now."""
    settings, user = ctx.settings, _user(ctx.engine, user_id)
    if user is None or user.confirmed_at is not None:
        return
    link = settings.site_url + CONFIRM_PATH + confirm_token(settings.signing_key, user)
    hours = CONFIRM_MAX_AGE // 3600
    body = WELCOME.format(email=user.email, site=settings.site_url, hours=hours, link=link)
    key = f"job-{ctx.job_id}"
    mail.send(settings, mail.compose(settings, user.email, "Welcome to Pillars", body, key), key)


@job("accounts.send_password_reset", queue="mail", max_attempts=5, timeout=mail.SEND_TIMEOUT)
def send_password_reset(user_id: int, ctx: JobContext) -> None:
    """Email a one-time link for setting a new password."""
    settings, user = ctx.settings, _user(ctx.engine, user_id)
    if user is None:
        return
    link = settings.site_url + RESET_PATH + reset_token(settings.signing_key, user)
    body = RESET.format(email=user.email, minutes=RESET_MAX_AGE // 60, link=link)
    key = f"job-{ctx.job_id}"
    subject = "Reset your Pillars password"
    mail.send(settings, mail.compose(settings, user.email, subject, body, key), key)


@job("accounts.send_signup_attempt", queue="mail", max_attempts=5, timeout=mail.SEND_TIMEOUT)
def send_signup_attempt(user_id: int, ctx: JobContext) -> None:
    """Tell an account's holder that someone tried to sign up with their address.

    The sign-up page says the same whether or not the address was taken, so
    this email is the only place that tells.
    """
    settings, user = ctx.settings, _user(ctx.engine, user_id)
    if user is None:
        return
    body = SIGNUP_ATTEMPT.format(email=user.email, site=settings.site_url)
    key = f"job-{ctx.job_id}"
    subject = "Someone tried to sign up with your address"
    mail.send(settings, mail.compose(settings, user.email, subject, body, key), key)


@job("accounts.prune_login_attempts", max_attempts=3, timeout=300)
def prune_login_attempts(ctx: JobContext) -> int:
    """Delete what no longer counts toward a limit: old failed sign-ins and expired rate events.

    One hourly chore for both (its name is older than the rate events).
    """
    window = ctx.settings.login_window
    with Session(ctx.engine) as session, session.begin():
        older = LoginAttempt.attempted_at < seconds_ago(window)
        result = session.execute(delete(LoginAttempt).where(older))
        deleted = int(cast(CursorResult[Any], result).rowcount)
        expired = ratelimit.prune(session)
    log.info("pruned %d failed sign-in(s) and %d expired rate event(s)", deleted, expired)
    return deleted + expired
