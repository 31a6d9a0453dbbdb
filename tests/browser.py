"""Real-browser test fixtures: the site under gunicorn, and Debian's headless Chromium.

Registered as a plugin by tests/conftest.py, so any test module can ask for
`site` and `browser`. Without Chromium the tests are skipped with a reason
that says how to install it; with CI=true they must run.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from sqlalchemy import Engine

from tests.processes import start_module, stop, wait_for
from tests.web import PASSWORD, emailed_link

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Generous: the machine is shared and a report runs in a cold worker.
DEADLINE_MS = 60_000


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"needs a Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def site(db: Engine, process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The site under gunicorn on a free loopback port; yields its base URL."""
    port = free_port()
    args = ("-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "2")
    server = start_module("gunicorn", process_env, *args, log=tmp_path / "gunicorn.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/readyz"), timeout=60, what="gunicorn to serve")
        yield base
    finally:
        stop(server)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium profile."""
    executable = chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=ARGS,
            accept_downloads=True,
        )
        context.set_default_timeout(DEADLINE_MS)
        yield context
        context.close()


def sign_up(page: Page, site: str, db: Engine, email: str, password: str = PASSWORD) -> None:
    """Sign up in the browser, follow the link the welcome email brings and give the
    password, as a person does; the page ends signed in at /exports. The test runs the
    mail queue itself."""
    page.goto(f"{site}/signup")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:text('Sign up')")
    expect(page.locator(".flash")).to_contain_text(f"We sent a message to {email}")
    page.goto(site + emailed_link(db, email, "/confirm/"))
    page.fill("#password", password)
    page.click("button:text('Confirm')")
    expect(page).to_have_url(f"{site}/exports")
