"""The cron page in a real browser (headless Chromium via Playwright), kept live by itself.

gunicorn serves the site, and real cron and worker processes run the test
schedules (tests/schedules.py), so the page's refresh, the buttons' CSRF
token and the browser's own Origin header are exercised as in production.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import Engine, text

from tests.browser import DEADLINE_MS, sign_up
from tests.processes import start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EVERY_SECOND = "test.every_second"


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    """The site, cron and the worker all load the test schedules."""
    return {**process_env, "JOB_MODULES": "tests.jobs,tests.schedules"}


@pytest.fixture
def admin_page(site: str, browser: BrowserContext, db: Engine) -> Page:
    """A page signed in as an admin (signed up in the browser, promoted in the database)."""
    page = browser.new_page()
    sign_up(page, site, db, "root@example.com")
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET is_admin = true"))
        conn.execute(text("DELETE FROM jobs"))  # the welcome email: not this test's job
    return page


def paused_skips(db: Engine) -> int:
    with db.connect() as conn:
        found = conn.execute(
            text(
                "SELECT coalesce(sum(occurrences), 0) FROM cron_events"
                " WHERE name = :n AND reason = 'paused by root@example.com'"
            ),
            {"n": EVERY_SECOND},
        ).scalar_one()
    return int(found)


def test_a_schedules_last_job_and_outcome_appear_without_a_reload_and_pause_holds_it(
    site: str, admin_page: Page, db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    page = admin_page
    page.goto(f"{site}/admin/cron")
    row = page.locator(f'tr[data-schedule="{EVERY_SECOND}"]')
    expect(row.locator(".last-job")).to_have_text("never")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    cron = start("cron.py", process_env, log=tmp_path / "cron.log")
    worker = start("worker.py", process_env, log=tmp_path / "worker.log")
    try:
        expect(row.locator(".last-job .badge")).to_have_text("succeeded", timeout=DEADLINE_MS)
        expect(row.locator(".recent a.badge")).to_have_count(5, timeout=DEADLINE_MS)
        assert page.evaluate("window.sameDocument") is True  # refreshed in place

        row.locator("button:text('Pause')").click()
        expect(page.locator(".flash")).to_contain_text(f"Schedule {EVERY_SECOND} paused")
        expect(row).to_contain_text("by root@example.com")
        wait_for(lambda: paused_skips(db) >= 2, timeout=60, what="cron to skip while paused")
        row.locator("button:text('Resume')").click()
        expect(page.locator(".flash")).to_contain_text(f"Schedule {EVERY_SECOND} resumed")
        expect(row.locator(".badge.failed")).to_have_count(0)  # no "paused" badge
    finally:
        assert [stop(cron), stop(worker)] == [0, 0]
    page.screenshot(path=str(tmp_path / "cron.png"), full_page=True)
