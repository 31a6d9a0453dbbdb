"""Account actions over the caller's session; none of them commits."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.config import Settings
from app.jobs import enqueue
from app.models import LoginAttempt, User

#: First key of the transaction advisory lock that serializes sign-ins per email
#: ("LOG"); distinct from the worker's life locks, which use their own namespace.
LOGIN_LOCK_NAMESPACE = 0x4C_4F47
#: A client address may fail this many times more often than one email address,
#: so a shared office network is not locked out by one person's typos.
ADDRESS_FACTOR = 4


class EmailTaken(ValueError):
    """An account with this email address exists already."""


class TooManyAttempts(Exception):
    """Too many failed sign-ins recently; `retry_after` says how many seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry in {retry_after} s")
        self.retry_after = retry_after


def normalize_email(email: str) -> str:
    return email.strip().lower()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check against when the email is unknown, so both failures take as long."""
    return generate_password_hash("no account has this password")


def sign_up(session: Session, email: str, password: str) -> User:
    """Add a user and queue their welcome email in the caller's transaction.

    Raises `EmailTaken`, also when another request took the address a moment
    earlier (the unique constraint decides; a savepoint keeps the session usable).
    """
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(email)
    user = User(email=email, password_hash=generate_password_hash(password))
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise EmailTaken(email) from None
    enqueue(session, "accounts.send_welcome", {"user_id": user.id}, context=f"user {user.id}")
    return user


def authenticate(
    session: Session, settings: Settings, email: str, password: str, remote_addr: str
) -> User | None:
    """Return the user if the password is right, else record the failure and return None.

    Raises `TooManyAttempts` before checking anything once the email or the
    client address has failed too often within LOGIN_WINDOW. The caller must
    commit in every case, or the failure is not counted.
    """
    email = normalize_email(email)
    # Sign-ins for one email wait for each other across every web process,
    # so two concurrent guesses cannot both read "4 failures" and both try.
    session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:email))"),
        {"namespace": LOGIN_LOCK_NAMESPACE, "email": email},
    )
    _check_rate(session, settings, LoginAttempt.email == email, settings.login_max_failures)
    limit = settings.login_max_failures * ADDRESS_FACTOR
    _check_rate(session, settings, LoginAttempt.remote_addr == remote_addr, limit)
    user = session.scalar(select(User).where(User.email == email))
    valid = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is not None and valid:
        session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
        return user
    session.add(LoginAttempt(email=email, remote_addr=remote_addr))
    return None


def seconds_ago(seconds: float) -> ColumnElement[datetime]:
    """The database's `now()` minus `seconds`: times are compared on one clock."""
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def _check_rate(
    session: Session, settings: Settings, which: ColumnElement[bool], limit: int
) -> None:
    window = settings.login_window
    recent = LoginAttempt.attempted_at > seconds_ago(window)
    count, age = session.execute(
        select(
            func.count(),
            func.extract("epoch", func.now() - func.min(LoginAttempt.attempted_at)),
        ).where(which, recent)
    ).one()
    if count >= limit:
        raise TooManyAttempts(retry_after=max(1, int(window - float(age or 0))))


def request_password_reset(session: Session, email: str) -> None:
    """Queue a reset link for the account with this email, if there is one.

    Says nothing either way, so the form cannot be used to learn who has an
    account. A unique key keeps at most one reset email per user in the queue.
    """
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is not None:
        enqueue(
            session,
            "accounts.send_password_reset",
            {"user_id": user.id},
            unique_key=f"password-reset:{user.id}",
            context=f"user {user.id}",
        )


def change_password(session: Session, user: User, password: str) -> None:
    """Set a new password; old reset links and other signed-in sessions stop working."""
    user.password_hash = generate_password_hash(password)
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))
