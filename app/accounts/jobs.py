"""Mail jobs for accounts, and the chore that forgets old failed sign-ins.

Run by the worker, never by a request: a slow mail server delays an email,
not a page. Each message is keyed by its job id (see `app.mail`).
"""

from __future__ import annotations

import logging

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app import mail
from app.accounts.service import seconds_ago
from app.accounts.tokens import RESET_MAX_AGE, RESET_PATH, reset_token
from app.config import get_settings
from app.db import get_engine
from app.jobs import JobContext, job
from app.models import LoginAttempt, User

log = logging.getLogger(__name__)

WELCOME = """Welcome to Pillars, {email}.

Upload a CSV at {site}/exports and we will build you a report with summary
statistics and a chart. We email you when it is ready.
"""

RESET = """Someone (we hope you) asked to reset the password for {email}.

Set a new password here within {minutes} minutes:

{link}

If it was not you, ignore this email: your password stays as it is.
"""


def _user(user_id: int) -> User | None:
    with Session(get_engine()) as session:
        return session.get(User, user_id)


@job("accounts.send_welcome", queue="mail", max_attempts=5)
def send_welcome(user_id: int, ctx: JobContext) -> None:
    """Email a new user; does nothing if the account is gone by now."""
    settings, user = get_settings(), _user(user_id)
    if user is None:
        return
    body = WELCOME.format(email=user.email, site=settings.site_url)
    key = f"job-{ctx.job_id}"
    mail.send(settings, mail.compose(settings, user.email, "Welcome to Pillars", body, key), key)


@job("accounts.send_password_reset", queue="mail", max_attempts=5)
def send_password_reset(user_id: int, ctx: JobContext) -> None:
    """Email a one-time link for setting a new password."""
    settings, user = get_settings(), _user(user_id)
    if user is None:
        return
    link = settings.site_url + RESET_PATH + reset_token(settings.secret_key, user)
    body = RESET.format(email=user.email, minutes=RESET_MAX_AGE // 60, link=link)
    key = f"job-{ctx.job_id}"
    subject = "Reset your Pillars password"
    mail.send(settings, mail.compose(settings, user.email, subject, body, key), key)


@job("accounts.prune_login_attempts", max_attempts=3, timeout=300)
def prune_login_attempts() -> int:
    """Delete failed sign-ins older than LOGIN_WINDOW: they no longer count toward the limit."""
    window = get_settings().login_window
    with get_engine().begin() as conn:
        older = LoginAttempt.attempted_at < seconds_ago(window)
        deleted = conn.execute(delete(LoginAttempt).where(older)).rowcount
    log.info("pruned %d failed sign-in(s)", deleted)
    return deleted
