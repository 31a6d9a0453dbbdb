"""Every page on a 390 px phone and a laptop, light and dark: it fits, numbers sit under their
headings, and axe-core finds nothing. Then the job list keeps itself current, except while
someone is ticking rows.

gunicorn serves the site on the test database, headless Chromium (Debian's)
shows it through Playwright, and the export is built by the real report job.
Screenshots of every page go to the test's folder, and to PILLARS_SCREENSHOTS
when that names a folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import audit
from app.jobs.testing import drain
from tests import factory
from tests.accessibility import (
    DESKTOP,
    PHONE,
    add_axe,
    misaligned_numbers,
    overflowing,
    too_wide,
    violations,
)
from tests.browser import DEADLINE_MS, sign_up

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EMAIL = "operator.with.a.rather.long.address@example.com"
PASSWORD = "correct horse battery"
CSV = (
    "month,region,revenue\n"
    + "".join(
        f"{1 + n % 12},{('north', 'south', 'east', 'west')[n % 4]},{1000 + n * 37 % 5000}\n"
        for n in range(500)
    )
).encode()


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    """The site loads the test schedules too, so the cron page has rows."""
    return {**process_env, "JOB_MODULES": "tests.jobs,tests.schedules"}


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PILLARS_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def signed_in(site: str, browser: BrowserContext, db: Engine) -> Iterator[Page]:
    """An admin with an export built, jobs in every state, and an action on record."""
    add_axe(browser)
    page = browser.new_page()
    sign_up(page, site, db, EMAIL, PASSWORD)
    page.set_input_files("#file", {"name": "sales-2026.csv", "mimeType": "text/csv", "buffer": CSV})
    page.click("button:text('Build the report')")
    expect(page).to_have_url(re.compile(r"/exports/\d+$"))
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET is_admin = true"))
        conn.execute(text("DELETE FROM jobs WHERE name = 'accounts.send_welcome'"))
    drain(db, queues=["reports"])
    error = {
        "attempt": 3,
        "at": "2026-11-30T06:00:00+00:00",
        "worker": "box.example.com:4242:abcdef",
        "error": "RuntimeError: the upstream server answered 503 Service Unavailable",
        "traceback": 'Traceback (most recent call last):\n  File "/srv/app/handlers.py", line 42'
        ", in call_the_upstream_service_with_a_long_name\n" * 3,
    }
    failed = factory.row(
        db,
        "test.login",
        {"user": "ada@example.com", "password": "hunter2"},
        state="failed",
        attempts=3,
        errors=[error],
        last_error=error["error"],
    )
    factory.row(db, "test.add", {"a": 123456789, "b": 987654321}, queue="mail")
    factory.row(db, "test.add", {"a": 1, "b": 2}, state="running", started_at=None)
    factory.row(db, "test.noop", {}, queue="reports", state="cancelled")
    with Session(db) as session:
        audit.record(session, audit.Actor(EMAIL, "dashboard"), "retry", job_ids=[failed])
        session.commit()
    yield page


def pages(site: str, db: Engine) -> list[tuple[str, str]]:
    with db.connect() as conn:
        export = conn.execute(text("SELECT id FROM exports")).scalar_one()
        failed = conn.execute(text("SELECT job_id FROM jobs WHERE state = 'failed'")).scalar_one()
    return [
        ("exports", f"{site}/exports"),
        ("export", f"{site}/exports/{export}"),
        ("home", f"{site}/"),
        ("overview", f"{site}/admin/"),
        ("jobs", f"{site}/admin/jobs"),
        ("jobs-failed", f"{site}/admin/jobs?state=failed&name=test.login"),
        ("job", f"{site}/admin/jobs/{failed}"),
        ("cron", f"{site}/admin/cron"),
    ]


@pytest.mark.parametrize(
    ("size", "scheme"), [(PHONE, "light"), (PHONE, "dark"), (DESKTOP, "light"), (DESKTOP, "dark")]
)
def test_every_signed_in_page_fits_aligns_its_numbers_and_passes_axe(
    site: str,
    signed_in: Page,
    db: Engine,
    shots: Path,
    size: ViewportSize,
    scheme: str,
) -> None:
    page = signed_in
    page.set_viewport_size(size)
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    found: dict[str, list[str]] = {}
    for name, url in pages(site, db):
        page.goto(url)
        expect(page.locator("main")).to_be_visible()
        page.screenshot(path=str(shots / f"{name}-{size['width']}-{scheme}.png"), full_page=True)
        problems = violations(page) + misaligned_numbers(page)
        if extra := too_wide(page):
            problems.append(
                f"{extra} px wider than the {size['width']} px window: {overflowing(page)}"
            )
        if problems:
            found[name] = problems
    assert not found, report(found)


@pytest.mark.parametrize("size", [PHONE, DESKTOP])
def test_signed_out_pages_and_form_errors_pass_axe_and_fit(
    site: str, browser: BrowserContext, shots: Path, size: ViewportSize
) -> None:
    add_axe(browser)
    page = browser.new_page()
    page.set_viewport_size(size)
    found: dict[str, list[str]] = {}
    for name, path in [
        ("front", "/"),
        ("login", "/login"),
        ("signup", "/signup"),
        ("forgot", "/forgot"),
    ]:
        page.goto(f"{site}{path}")
        found[name] = violations(page) + (
            [f"{too_wide(page)} px too wide"] if too_wide(page) else []
        )
    page.goto(f"{site}/signup")
    page.fill("#email", "not an address")
    page.fill("#password", "short")
    page.click("button:text('Sign up')")
    expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    described = page.locator("#email").get_attribute("aria-describedby")
    assert described and page.locator(f"#{described}").inner_text().strip()
    page.screenshot(path=str(shots / f"signup-errors-{size['width']}.png"), full_page=True)
    found["signup with errors"] = violations(page)
    assert not any(found.values()), report(found)


def report(found: dict[str, list[str]]) -> str:
    return "\n".join(
        f"{name}: {problem}" for name, problems in found.items() for problem in problems
    )


def listed(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "tr[data-job-id]", "rows => rows.map((row) => row.dataset.jobId)"
    )
    return ids


def skipped(page: Page) -> int:
    return int(page.eval_on_selector("#live", "box => Number(box.dataset.skipped || 0)"))


def test_the_job_list_shows_new_jobs_by_itself_but_not_while_rows_are_ticked(
    site: str, browser: BrowserContext, db: Engine
) -> None:
    page = browser.new_page()
    sign_up(page, site, db, EMAIL, PASSWORD)
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET is_admin = true"))
        conn.execute(text("DELETE FROM jobs"))
    first = factory.row(db, queue="mail")
    page.goto(f"{site}/admin/jobs")
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    second = factory.row(db, queue="mail")
    expect(page.locator(f'tr[data-job-id="{second}"]')).to_be_visible(timeout=DEADLINE_MS)
    expect(page.locator("#state option[value=queued]")).to_have_text("queued (2)")

    page.check(f'tr[data-job-id="{first}"] input[name=job_id]')
    expect(page.locator("#selected-count")).to_contain_text("1 selected")
    third = factory.row(db, queue="mail")
    ticks = skipped(page)
    page.wait_for_function(
        f"() => Number(document.getElementById('live').dataset.skipped) > {ticks + 1}",
        timeout=DEADLINE_MS,
    )
    assert str(third) not in listed(page)  # a refresh would have lost the tick
    expect(page.locator(f'tr[data-job-id="{first}"] input[name=job_id]')).to_be_checked()

    page.uncheck(f'tr[data-job-id="{first}"] input[name=job_id]')
    page.locator("h1").click()  # focus leaves the list
    expect(page.locator(f'tr[data-job-id="{third}"]')).to_be_visible(timeout=DEADLINE_MS)
    assert page.evaluate("window.sameDocument") is True


def test_ticked_rows_are_cancelled_from_the_list_in_a_real_browser(
    site: str, browser: BrowserContext, db: Engine
) -> None:
    page = browser.new_page()
    sign_up(page, site, db, EMAIL, PASSWORD)
    with db.begin() as conn:
        conn.execute(text("UPDATE users SET is_admin = true"))
        conn.execute(text("DELETE FROM jobs"))
    ids = [factory.row(db, queue="mail") for _ in range(3)]
    page.goto(f"{site}/admin/jobs")
    page.check("#select-all")
    expect(page.locator("#selected-count")).to_contain_text("3 selected")
    page.click("button:text('Cancel selected')")
    expect(page.locator(".flash")).to_contain_text("3 jobs cancelled.")
    with db.connect() as conn:
        states = conn.execute(
            text("SELECT state FROM jobs WHERE job_id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        assert set(states) == {"cancelled"}
