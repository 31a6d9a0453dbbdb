"""Who is signed in: a user id in Flask's signed session cookie, checked against the database.

The cookie also holds a fingerprint of the password hash, so changing the
password signs out every other browser that was signed in.
"""

from __future__ import annotations

from typing import NoReturn

from flask import abort, g, redirect, request, session, url_for

from app import accounts
from app.models import User
from app.web.db import get_session


def sign_in(user: User) -> None:
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session["user_id"] = user.id
    session["auth"] = accounts.fingerprint(user.password_hash)


def sign_out() -> None:
    session.clear()


def current_user() -> User | None:
    """The signed-in user, loaded once per request and only when asked for."""
    if "user" not in g:
        g.user = _load()
    user: User | None = g.user
    return user


def _load() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    user = get_session().get(User, user_id)
    if user is None or session.get("auth") != accounts.fingerprint(user.password_hash):
        session.clear()
        return None
    return user


def require_user() -> User:
    """The signed-in user; otherwise end the request (401 for the API, else to sign-in)."""
    user = current_user()
    if user is None:
        _refuse()
    return user


def _refuse() -> NoReturn:
    if request.blueprint == "api":
        abort(401, "Sign in first.")
    abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?")), 303))


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, so sign-in cannot redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None
