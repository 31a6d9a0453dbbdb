"""Sign-out in a real browser (headless Chromium, gunicorn) ends the session on the server."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_a_session_cookie_saved_before_sign_out_no_longer_signs_in(
    site: str, browser: BrowserContext
) -> None:
    page = browser.new_page()
    page.goto(f"{site}/signup")
    page.fill("#email", "ada@example.com")
    page.fill("#password", "correct horse battery")
    page.click("button:text('Sign up')")
    expect(page).to_have_url(f"{site}/exports")
    saved = browser.cookies()  # what malware or a shared computer could copy

    page.click("button:text('Sign out')")
    expect(page.locator(".flash")).to_contain_text("You are signed out")
    # Put the old cookie back, as a thief would.
    browser.add_cookies([{"name": c["name"], "value": c["value"], "url": site} for c in saved])
    page.goto(f"{site}/exports")
    expect(page).to_have_url(f"{site}/login?next=/exports")
    expect(page.locator("h1")).to_have_text("Sign in")
