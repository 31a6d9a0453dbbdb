"""The site in a real browser: headless Chromium (Debian's package) driven by Playwright.

The site runs under gunicorn and the reports are built by a real worker
process, both on the test database, exactly as in production.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import Engine

from tests.browser import DEADLINE_MS, sign_up
from tests.processes import start, stop

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROWS = "".join(f"city{n},{1000 + n * 37 % 5000},{n % 17}\n" for n in range(2000))
CSV = ("city,population,district\n" + ROWS).encode()


def test_sign_up_upload_watch_the_report_finish_and_download_the_pdf(
    site: str,
    browser: BrowserContext,
    db: Engine,
    process_env: dict[str, str],
    tmp_path: Path,
) -> None:
    page = browser.new_page()
    sign_up(page, site, db, "ada@example.com")

    page.set_input_files("#file", {"name": "cities.csv", "mimeType": "text/csv", "buffer": CSV})
    page.click("button:text('Build the report')")
    expect(page).to_have_url(re.compile(r"/exports/\d+$"))
    expect(page.locator("#state")).to_have_text("Waiting")  # no worker runs yet
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    listing = browser.new_page()
    listing.goto(f"{site}/exports")
    badge = listing.locator("tr[data-export-id] .badge")
    expect(badge).to_have_text("Waiting")
    listing.evaluate("window.sameDocument = true")

    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        expect(page.locator("#state")).to_have_text("Ready", timeout=DEADLINE_MS)
    finally:
        stop(worker)
    assert page.evaluate("window.sameDocument") is True
    expect(page.locator("#progress")).to_have_js_property("value", 1)
    # The summary appears in place, drawn by the server, with thousands separators.
    expect(page.locator("#summary")).to_be_visible()
    expect(page.locator("#facts")).to_contain_text("2,000 rows, 3 columns")
    expect(page.locator("#summary th[scope=row]")).to_have_text(["city", "population", "district"])
    expect(badge).to_have_text("Ready", timeout=DEADLINE_MS)  # the list refreshed itself
    expect(listing.locator("[data-field=rows]")).to_have_text("2,000")
    assert listing.evaluate("window.sameDocument") is True

    with page.expect_download() as download_info:
        page.click("#download-pdf")
    download = download_info.value
    assert download.suggested_filename == "cities-report.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    page.screenshot(path=str(tmp_path / "done.png"))
