"""Driving the site through Flask's test client the way a browser does: forms carry CSRF tokens."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from app.config import Settings
from app.jobs.testing import drain

PASSWORD = "correct horse battery"
CSV = b"city,population,area\nOslo,709000,454\nBergen,291000,445\nTromso,77000,2521\n"


def csrf_token(client: FlaskClient, page: str) -> str:
    """The CSRF token from the form on `page`, as a browser would submit it."""
    html = client.get(page).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def submit(
    client: FlaskClient, path: str, data: Mapping[str, object], page: str | None = None
) -> TestResponse:
    """POST `data` to `path` with the CSRF token of the form on `page` (default: `path`)."""
    token = csrf_token(client, page or path)
    return client.post(path, data={**data, "csrf_token": token})


def ask_to_sign_up(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    """Send the sign-up form: the answer is the same whether or not the address is taken."""
    return submit(client, "/signup", {"email": email, "password": password})


def sign_up(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    """Sign up as a person does: send the form, follow the link the welcome email brings
    (sent here by running the mail queue) and give the password on the page it opens.
    Returns the password form's answer; `client` is signed in after it."""
    response = ask_to_sign_up(client, email, password)
    assert response.status_code == 303, response.get_data(as_text=True)
    engine = client.application.extensions["pillars_engine"]
    settings = client.application.config["PILLARS_SETTINGS"]
    return confirm(
        client, emailed_link(engine, email.strip().lower(), "/confirm/", settings), password
    )


def confirm(client: FlaskClient, link: str, password: str = PASSWORD) -> TestResponse:
    """Open a confirmation link and send the password on the page it shows."""
    return submit(client, link, {"password": password})


def emailed_link(engine: Engine, to: str, path: str, settings: Settings | None = None) -> str:
    """Run the mail queue here, as the worker would (with `settings`, by default the
    environment's now), and return the link starting with `path` in the one message it
    sent to `to`."""
    settings = settings or Settings.from_env()
    folder = Path(settings.mail_dir)
    before = set(folder.glob("*.eml"))
    drain(engine, queues=["mail"], settings=settings)
    fresh = [message_from_bytes(p.read_bytes()) for p in set(folder.glob("*.eml")) - before]
    [message] = [m for m in fresh if m["To"] == to]
    return link(message, path)


def link(message: Message, path: str) -> str:
    """The site-relative link starting with `path` (e.g. `/confirm/`) in an email."""
    match = re.search(rf"https?://[^/\s]+({re.escape(path)}\S+)", body(message))
    assert match, f"no {path} link in {message['Subject']!r}"
    return match.group(1)


def log_in(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    return submit(client, "/login", {"email": email, "password": password})


def upload(client: FlaskClient, content: bytes = CSV, filename: str = "cities.csv") -> TestResponse:
    return submit(client, "/exports", {"file": (io.BytesIO(content), filename)})


def export_id(response: TestResponse) -> int:
    """The id of the export a successful upload redirected to."""
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def messages(folder: Path, to: str | None = None) -> list[Message]:
    """Development mail written to `folder`, oldest first, optionally only to `to`."""
    found = [message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]
    return [m for m in found if to is None or m["To"] == to]


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()
