"""Who is signed in: a user id in Flask's signed session cookie, checked against the database.

The cookie holds the user's session generation, so signing out (or changing
the password) ends every session issued before, even a cookie copied
elsewhere; and the times of sign-in and of the last request, so a session
ends after SESSION_LIFETIME in all and after SESSION_IDLE_TIMEOUT unused.
Those two times are the web process's clock: a session lasts hours, so a
few seconds of skew between machines do not matter.
"""

from __future__ import annotations

import time
from typing import NoReturn
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for

from app import accounts
from app.config import Settings
from app.models import User
from app.web.db import get_session
from app.web.forms import has_control_characters

#: Refresh the last-seen time at most this often, so not every page rewrites the cookie.
SEEN_GRANULARITY = 60


def sign_in(user: User) -> None:
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session.permanent = True  # the cookie outlives the browser, up to SESSION_LIFETIME
    now = int(time.time())
    session["user_id"] = user.id
    session["auth"] = accounts.fingerprint(user.password_hash)
    session["generation"] = user.session_generation
    session["since"] = session["seen"] = now


def sign_out() -> None:
    """End the session here and every other session of the same user."""
    user = current_user()
    if user is not None:
        accounts.end_sessions(get_session(), user)
        get_session().commit()
    session.clear()
    g.user = None


def current_user() -> User | None:
    """The signed-in user, loaded once per request and only when asked for."""
    if "user" not in g:
        g.user = _load()
    user: User | None = g.user
    return user


def session_expired(since: object, seen: object, now: float, settings: Settings) -> bool:
    """Whether a session signed in at `since` and last used at `seen` has ended by `now`."""
    if not isinstance(since, int) or not isinstance(seen, int):
        return True  # a cookie from before these times were kept, or tampered with
    return now - since > settings.session_lifetime or now - seen > settings.session_idle_timeout


def _load() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    settings: Settings = current_app.config["PILLARS_SETTINGS"]
    now = time.time()
    user = get_session().get(User, user_id)
    if (
        user is None
        or session.get("auth") != accounts.fingerprint(user.password_hash)
        or session.get("generation") != user.session_generation
        or session_expired(session.get("since"), session.get("seen"), now, settings)
    ):
        session.clear()
        return None
    if now - session["seen"] >= SEEN_GRANULARITY:
        session["seen"] = int(now)
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
    """Return `target` if it is a path on this site, so sign-in cannot redirect elsewhere.

    Browsers drop tabs and newlines from a Location and read a backslash as a
    slash, so `/<TAB>/evil.example` and `/\\evil.example` would leave the site:
    any control character or backslash refuses the target, as does anything
    `urlsplit` reads a scheme or a host from.
    """
    if not target or not target.startswith("/") or "\\" in target:
        return None
    if has_control_characters(target) or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target
