"""Rate limits as the site applies them: who the client is, which limits apply, and the 429.

The counting itself is `app.accounts.ratelimit`, in the request's transaction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from app.accounts.ratelimit import RateLimited, hit
from app.config import Rate, Settings
from app.web.db import get_session
from app.web.forms import has_control_characters

#: Longer than any IPv6 address; a proxy misconfigured to pass a client's header
#: through cannot make a key (or an index row) of any size.
MAX_ADDRESS = 64

#: What a refusal says, by the kind of key that refused.
MESSAGES = {
    "upload-user": "You uploaded many files in a short time.",
    "upload-addr": "Many files were uploaded from your network in a short time.",
    "signup-addr": "Many accounts were made from your network in a short time.",
    "forgot-addr": "Many reset links were asked for from your network in a short time.",
}


def client_address() -> str:
    """The client's address: the socket's peer, or what TRUSTED_PROXY_HOPS proxies say it is."""
    address = request.remote_addr or "unknown"
    if has_control_characters(address):
        return "unknown"
    return address[:MAX_ADDRESS]


def settings() -> Settings:
    configured: Settings = current_app.config["PILLARS_SETTINGS"]
    return configured


def enforce(limits: Sequence[tuple[str, Rate]]) -> None:
    """Count this request under every limit, or raise `RateLimited` (answered with a 429).

    Counted in the request's transaction: it stands only if the view commits.
    """
    hit(get_session(), limits)


def enforce_now(limits: Sequence[tuple[str, Rate]]) -> None:
    """Like `enforce`, but commit the count at once, whatever the request does next.

    For actions that cost the site even when refused later (an upload that
    turns out not to be a CSV). The commit does not wait for the WAL flush:
    the per-key locks are released sooner, and what a machine crash could
    lose is a second of counted events, never data.
    """
    session = get_session()
    session.execute(text("SET LOCAL synchronous_commit = off"))
    hit(session, limits)
    session.commit()


def client_network() -> str:
    """What a per-address limit counts under: the client's address, or for IPv6 its /64.

    One IPv6 customer is handed a /64 (or more) and picks any address in it:
    counted per address, sign-ups could mail arbitrary people at any rate."""
    address = client_address()
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def uploads(user_id: int) -> list[tuple[str, Rate]]:
    """The limits on uploading: per user and per client address."""
    return [
        (f"upload-user:{user_id}", settings().upload_rate_per_user),
        (f"upload-addr:{client_network()}", settings().upload_rate_per_address),
    ]


def signups() -> list[tuple[str, Rate]]:
    return [(f"signup-addr:{client_network()}", settings().signup_rate_per_address)]


def forgot() -> list[tuple[str, Rate]]:
    return [(f"forgot-addr:{client_network()}", settings().forgot_rate_per_address)]


def retry_in(seconds: int) -> str:
    """`seconds` in words for people: whole minutes from a minute up."""
    return f"{seconds} s" if seconds < 60 else f"{-(-seconds // 60)} min"


def too_many(error: RateLimited) -> ResponseReturnValue:
    """Answer 429 with what happened, when to come back, and a Retry-After header."""
    said = MESSAGES.get(error.key.split(":", 1)[0], "Too many requests in a short time.")
    message = f"{said} Try again in {retry_in(error.retry_after)}."
    headers = {"Retry-After": str(error.retry_after)}
    if request.path.startswith("/api/"):
        return {"error": message}, 429, headers
    page = render_template("error.html", code=429, title="Too many requests", message=message)
    return page, 429, headers


def init_app(app: Flask) -> None:
    app.register_error_handler(RateLimited, too_many)
