"""Reset tokens never reach gunicorn's access log (or its error log), through the real gunicorn."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.accounts import reset_token
from app.config import Settings
from app.models import User
from app.web.accesslog import mask_reset_tokens
from tests.browser import answers, free_port
from tests.processes import start_module, stop, wait_for


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ('"GET /reset/abc.def-ghi HTTP/1.1"', '"GET /reset/*** HTTP/1.1"'),
        ("/reset/abc.def?x=1", "/reset/***?x=1"),
        ("https://site.example/reset/abc.def", "https://site.example/reset/***"),
        ("/reset%2Fabc.def", "/reset%2F***"),
        ("/exports/7 and /resetting", "/exports/7 and /resetting"),
        ('"GET /confirm/abc.def-ghi HTTP/1.1"', '"GET /confirm/*** HTTP/1.1"'),
        ("/confirm%2Fabc.def", "/confirm%2F***"),
        ("/confirmed", "/confirmed"),
    ],
)
def test_mask_reset_tokens_hides_the_token_and_nothing_else(line: str, masked: str) -> None:
    assert mask_reset_tokens(line) == masked


def get(url: str, **headers: str) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_a_reset_token_is_masked_in_gunicorns_real_access_log(
    db: Engine, settings: Settings, process_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(db) as session:
        user = User(email="ada@example.com", password_hash="x")
        session.add(user)
        session.commit()
        token = reset_token(settings.signing_key, user)
    access = tmp_path / "access.log"
    port = free_port()
    env = {**process_env, "GUNICORN_ACCESSLOG": str(access)}
    args = ("-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1")
    server = start_module("gunicorn", env, *args, log=tmp_path / "gunicorn.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/readyz"), timeout=60, what="gunicorn to serve")
        assert get(f"{base}/reset/{token}") == 200  # a real, valid link
        referer = f"{base}/reset/{token}"
        assert get(f"{base}/static/style.css", Referer=referer) == 200  # the page's stylesheet
        assert get(f"{base}/reset/not-a-token.forged") == 400
        wait_for(lambda: access.read_text().count("/reset/") >= 3, what="the access log")
        # A request line gunicorn refuses is logged as a warning, the path in it.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(f"GET /reset/{token}\tHTTP/1.1\r\nHost: x\r\n\r\n".encode())
            raw.recv(1024)
        error_log = tmp_path / "gunicorn.log"
        wait_for(lambda: "Invalid request" in error_log.read_text(), what="the warning")
    finally:
        stop(server)
    logged = access.read_text() + (tmp_path / "gunicorn.log").read_text()
    assert token not in logged and "not-a-token" not in logged
    assert logged.count("/reset/***") >= 4
