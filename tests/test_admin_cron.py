"""Cron on the dashboard: schedules with policy, last and next run, events, and "run now"."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from app.web import create_app
from tests.admin import flashed, post, signed_in


@pytest.fixture
def app(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The app with the test schedules loaded, as cron would load them."""
    monkeypatch.setenv("JOB_MODULES", "tests.jobs,tests.schedules")
    app = create_app({"TESTING": True})
    yield app
    app.extensions["pillars_engine"].dispose()


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


def schedule_row(page: str, name: str) -> str:
    found = re.search(rf"<tr>\s*<td><strong>{re.escape(name)}</strong>(.*?)</tr>", page, re.S)
    assert found, f"no row for {name}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_lists_every_schedule_with_policy_last_and_next_occurrence(
    admin: FlaskClient, db: Engine
) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state VALUES"
                " ('test.hourly.all', date_trunc('hour', now()) - interval '3 hours')"
            )
        )
    page = admin.get("/admin/cron").text
    prune = schedule_row(page, "pillars.prune_jobs")
    assert prune.startswith("pillars.prune_jobs every day at 03:15 (UTC) latest never")
    behind = schedule_row(page, "test.hourly.all")
    assert "every hour at :00 all (at most 24)" in behind
    assert "never" not in behind and "due now" in behind
    assert "skip while running" not in behind
    assert page.count("Run now</button>") == len(re.findall(r"<td><strong>", page))


def test_shows_what_cron_caught_up_or_skipped_newest_first(admin: FlaskClient, db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO cron_events (name, kind, occurrences, first_occurrence,
                                     last_occurrence, reason, recorded_at)
            VALUES ('test.hourly.all', 'caught_up', 3, '2026-03-01 09:00+00',
                    '2026-03-01 11:00+00', 'cron was down', now() - interval '1 hour'),
                   ('test.hourly.skip', 'skipped', 2, '2026-03-01 10:00+00',
                    '2026-03-01 11:00+00', 'missed while cron was down', now())
        """)
        )
    page = admin.get("/admin/cron").text
    events = page.split('id="events"')[1]
    assert events.index("test.hourly.skip") < events.index("test.hourly.all")
    assert "caught up" in events and "skipped" in events
    assert "2026-03-01 09:00:00 UTC" in events and "missed while cron was down" in events


def test_run_now_enqueues_the_schedules_job_once(admin: FlaskClient, db: Engine) -> None:
    response = post(admin, "/admin/cron/pillars.prune_jobs/run")
    assert response.headers["Location"] == "/admin/cron"
    page = html.unescape(flashed(admin, response))
    with db.connect() as conn:
        job = conn.execute(text("SELECT job_id, name, cron_name FROM jobs")).one()
    assert (job.name, job.cron_name) == ("pillars.prune_jobs", "pillars.prune_jobs")
    assert f"Schedule pillars.prune_jobs: job {job.job_id} enqueued to run now." in page
    last = schedule_row(page, "pillars.prune_jobs")
    assert "latest never" in last  # the schedule's own occurrences are untouched


def test_run_now_of_an_unknown_schedule_is_404(admin: FlaskClient, db: Engine) -> None:
    assert post(admin, "/admin/cron/no.such.schedule/run").status_code == 404
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0


def test_shows_state_left_by_schedules_removed_from_code_and_when_it_is_forgotten(
    admin: FlaskClient, db: Engine
) -> None:
    with db.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO cron_state (name, last_run_at, fingerprint, removed_at) VALUES
                ('old.digest', '2026-03-01 06:00+00', 'every 1 days at 06:00:00 (UTC)',
                 '2026-03-02 10:00+00'),
                ('old.unnoticed', '2026-03-01 07:00+00', NULL, NULL),
                ('pillars.prune_jobs', '2026-03-01 03:15+00', NULL, NULL)
        """)
        )
    page = admin.get("/admin/cron").text
    removed = page.split('id="orphans"')[1].split("</table>")[0]
    rows = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in removed.split("<tr>")[2:]]
    assert rows == [
        "old.digest every 1 days at 06:00:00 (UTC) 2026-03-01 06:00:00 UTC"
        " 2026-03-02 10:00:00 UTC 2026-04-01 10:00:00 UTC",
        "old.unnoticed not recorded 2026-03-01 07:00:00 UTC not yet: when a cron process starts —",
    ]
    assert "for 30 days after a cron process" in page


def test_a_page_without_removed_schedules_has_no_such_section(admin: FlaskClient) -> None:
    assert 'id="orphans"' not in admin.get("/admin/cron").text
