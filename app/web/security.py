"""What every request and response gets: CSRF checks on POST, strict browser headers."""

from __future__ import annotations

from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

#: Only this site's own files may load: nothing on a page comes from the internet,
#: and a page cannot be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
#: Two years, the figure browsers' preload lists ask for.
HSTS = "max-age=63072000; includeSubDomains"

csrf = CSRFProtect()


def served_over_https(site_url: str) -> bool:
    return site_url.lower().startswith("https://")


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Reset links carry their token in the URL: never send it on to another site.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        # The site is https only: browsers must never try it over plain http again.
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    """Check a CSRF token on every POST (forms carry it in a hidden field)."""
    csrf.init_app(app)
    app.after_request(_headers)
