"""Accounts in a real browser (headless Chromium, gunicorn): confirming the address by the
emailed link and the password chosen at sign-up, and sign-out ending the session on the
server."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import Engine

from tests.browser import sign_up
from tests.web import PASSWORD, emailed_link

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_sign_up_then_the_emailed_link_and_the_password_sign_in_and_open_the_exports(
    site: str, browser: BrowserContext, db: Engine
) -> None:
    page = browser.new_page()
    page.goto(f"{site}/signup")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.click("button:text('Sign up')")
    expect(page).to_have_url(f"{site}/login")
    expect(page.locator(".flash")).to_have_text(
        "We sent a message to ada@example.com: follow it to go on."
    )

    page.fill("#email", "ada@example.com")  # too soon: the address is not confirmed yet
    page.fill("#password", PASSWORD)
    page.click("button:text('Sign in')")
    expect(page.locator("main")).to_contain_text("follow the link we emailed you")
    page.goto(f"{site}/exports")
    expect(page).to_have_url(f"{site}/login?next=/exports")

    confirm = site + emailed_link(db, "ada@example.com", "/confirm/")
    page.goto(confirm)  # opening the link only asks for the password
    expect(page.locator("main")).to_contain_text(
        "Enter the password you chose at sign-up to confirm ada@example.com"
    )
    expect(page.locator("a:text('Set a new one')")).to_have_attribute("href", "/forgot")
    page.goto(f"{site}/exports")
    expect(page).to_have_url(f"{site}/login?next=/exports")  # still not signed in

    page.goto(confirm)
    page.fill("#password", "not the password")
    page.click("button:text('Confirm')")
    expect(page.locator("main")).to_contain_text(
        "That is not the password this account was made with"
    )
    page.fill("#password", PASSWORD)
    page.click("button:text('Confirm')")
    expect(page).to_have_url(f"{site}/exports")
    expect(page.locator(".flash")).to_contain_text("Your address is confirmed")
    expect(page.locator("h1")).to_have_text("New report")


def test_a_session_cookie_saved_before_sign_out_no_longer_signs_in(
    site: str, browser: BrowserContext, db: Engine
) -> None:
    page = browser.new_page()
    sign_up(page, site, db, "ada@example.com")
    saved = browser.cookies()  # what malware or a shared computer could copy

    page.click("button:text('Sign out')")
    expect(page.locator(".flash")).to_contain_text("You are signed out")
    # Put the old cookie back, as a thief would.
    browser.add_cookies([{"name": c["name"], "value": c["value"], "url": site} for c in saved])
    page.goto(f"{site}/exports")
    expect(page).to_have_url(f"{site}/login?next=/exports")
    expect(page.locator("h1")).to_have_text("Sign in")
