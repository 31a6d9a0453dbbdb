"""Who may use /admin, and which POSTs it accepts.

A visitor who is not signed in is sent to sign in; a signed-in user who is
not an admin gets a 404, as if the dashboard did not exist. Every POST is
checked twice: the CSRF token (Flask-WTF, for the whole site) and here the
Origin, so a page on another site cannot make an admin's browser act even if
a token leaked. Browsers send Origin with every POST; when a privacy setting
strips it, the Referer stands in, and a POST with neither is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, request

from app.web.users import require_user

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def guard() -> None:
    """Run before every admin view: sign-in first, then admin, then where a POST came from."""
    user = require_user()
    if not user.is_admin:
        abort(404)
    if request.method not in SAFE_METHODS and not from_this_site():
        abort(403, "This action did not come from this site's pages, so it was refused.")


def from_this_site() -> bool:
    """Whether the request's Origin (or, without one, its Referer) is this site.

    Scheme and host (with port) must both match what this request was sent
    to; behind a TLS proxy, the proxy must pass X-Forwarded-Proto and
    gunicorn trust it (`forwarded_allow_ips`), or every action is refused.
    """
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.scheme, request.host)
