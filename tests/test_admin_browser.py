"""Retry and cancel from a job's page in a real browser (headless Chromium via Playwright).

As in tests/test_browser.py: gunicorn serves the site and a real worker
process runs the jobs, so the browser's own Origin header, the CSRF token
and the page's live refresh are all exercised as in production.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import Engine, text

from tests import factory
from tests.admin import state_of
from tests.browser import DEADLINE_MS, sign_up
from tests.processes import start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def admin_page(site: str, browser: BrowserContext, db: Engine) -> Page:
    """A page signed in as an admin (signed up in the browser, promoted in the database)."""
    page = browser.new_page()
    sign_up(page, site, db, "root@example.com")
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET is_admin = true"))
        conn.execute(text("DELETE FROM jobs"))  # the welcome email: not this test's job
    return page


def test_retry_a_failed_job_and_watch_a_worker_run_it(
    site: str, admin_page: Page, db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    error = {"attempt": 1, "at": None, "worker": "w", "error": "Boom", "traceback": "Tb"}
    job_id = factory.row(
        db, "test.add", {"a": 2, "b": 3}, state="failed", attempts=1, errors=[error]
    )
    page = admin_page
    page.goto(f"{site}/admin/jobs/{job_id}")
    expect(page.locator("#state")).to_have_text("failed")
    page.click("button:text('Retry')")
    expect(page.locator(".flash")).to_contain_text(f"Job {job_id} (test.add) queued again")
    expect(page.locator("#state")).to_have_text("queued")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        expect(page.locator("#state")).to_have_text("succeeded", timeout=DEADLINE_MS)
    finally:
        stop(worker)
    expect(page.locator("#result")).to_have_text("5")
    assert page.evaluate("window.sameDocument") is True  # refreshed in place
    assert state_of(db, job_id) == "succeeded"


def running(db: Engine, job_id: uuid.UUID) -> bool:
    return state_of(db, job_id) == "running"


#: Long enough to open the page and click Cancel on a busy machine, short enough to wait out.
HANDLER_SECONDS = 20


def test_cancel_a_running_job_and_its_outcome_is_dropped(
    site: str, admin_page: Page, db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "ran.txt"
    payload = {"path": str(marker), "marker": "done", "sleep": HANDLER_SECONDS}
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        job_id = factory.row(db, "test.record", payload)
        wait_for(lambda: running(db, job_id), timeout=60, what="the worker to start the job")
        page = admin_page
        page.goto(f"{site}/admin/jobs/{job_id}")
        expect(page.locator("#state")).to_have_text("running")
        page.click("button:text('Cancel')")
        expect(page.locator(".flash")).to_contain_text(f"Job {job_id} (test.record) cancelled.")
        expect(page.locator("#state")).to_have_text("cancelled")
        expect(page.locator("button:text('Retry')")).to_be_visible()
        # The handler is not interrupted: it finishes, and the worker reports success.
        wait_for(marker.exists, timeout=HANDLER_SECONDS + 60, what="the handler to finish")
    finally:
        stop(worker)  # a clean stop saves every finished outcome before it exits
    assert marker.read_text().startswith("done")
    assert state_of(db, job_id) == "cancelled"  # the fence dropped that success
