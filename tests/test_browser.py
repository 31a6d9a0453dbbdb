"""The site in a real browser: headless Chromium (Debian's package) driven by Playwright.

The site runs under gunicorn and the reports are built by a real worker
process, both on the test database, exactly as in production.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright
from sqlalchemy import Engine

from tests.processes import start, start_module, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]

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
ROWS = "".join(f"city{n},{1000 + n * 37 % 5000},{n % 17}\n" for n in range(2000))
CSV = ("city,population,district\n" + ROWS).encode()
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


def test_sign_up_upload_watch_the_report_finish_and_download_the_pdf(
    site: str, browser: BrowserContext, process_env: dict[str, str], tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(f"{site}/signup")
    page.fill("#email", "ada@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button:text('Sign up')")
    expect(page).to_have_url(f"{site}/exports")

    page.set_input_files("#file", {"name": "cities.csv", "mimeType": "text/csv", "buffer": CSV})
    page.click("button:text('Build the report')")
    expect(page).to_have_url(re.compile(r"/exports/\d+$"))
    expect(page.locator("#state")).to_have_text("queued")  # no worker runs yet
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        expect(page.locator("#state")).to_have_text("succeeded", timeout=DEADLINE_MS)
    finally:
        stop(worker)
    assert page.evaluate("window.sameDocument") is True
    expect(page.locator("#progress")).to_have_js_property("value", 1)

    with page.expect_download() as download_info:
        page.click("#download-pdf")
    download = download_info.value
    assert download.suggested_filename == "cities-report.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    page.screenshot(path=str(tmp_path / "done.png"))
