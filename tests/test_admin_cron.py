"""Cron on the dashboard: schedules with policy, last job, history and next run; events;
"run now", pause and resume."""

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
    found = re.search(rf"<tr[^>]*>\s*<td><strong>{re.escape(name)}</strong>(.*?)</tr>", page, re.S)
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
    assert "every hour at :00 all (at most 24) never" in behind  # no job yet
    assert "due now" in behind
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
    assert "latest queued for " in last  # the job run now is its last job
    with db.connect() as conn:  # and the schedule's own occurrences are untouched
        assert conn.execute(text("SELECT count(*) FROM cron_state")).scalar_one() == 0


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


def add_cron_job(db: Engine, name: str, scheduled_for: str, state: str, error: str = "") -> str:
    with db.begin() as conn:
        job_id = conn.execute(
            text("""
            INSERT INTO jobs (name, cron_name, scheduled_for, state, last_error)
            VALUES ('test.noop', :name, :at, :state, nullif(:error, ''))
            RETURNING job_id
        """),
            {"name": name, "at": scheduled_for, "state": state, "error": error},
        ).scalar_one()
    return str(job_id)


def test_shows_each_schedules_last_job_and_outcome_and_its_newest_runs(
    admin: FlaskClient, db: Engine
) -> None:
    for hour in range(3, 10):
        add_cron_job(db, "test.hourly.all", f"2026-03-01 {hour:02}:00+00", "succeeded")
    failed = add_cron_job(db, "test.hourly.all", "2026-03-01 10:00+00", "failed", "Boom: disk full")
    page = admin.get("/admin/cron").text
    row = page.split('data-schedule="test.hourly.all"')[1].split("</tr>")[0]
    last = " ".join(
        re.sub(r"<[^>]+>", " ", row.split('class="last-job">')[1].split("</td>")[0]).split()
    )
    assert last == "failed for 2026-03-01 10:00:00 UTC Boom: disk full"
    assert f'href="/admin/jobs/{failed}"' in row
    recent = row.split('class="recent">')[1].split("</td>")[0]
    assert re.findall(r'title="([^"]+)"', recent) == [
        "2026-03-01 10:00:00 UTC: failed",
        "2026-03-01 09:00:00 UTC: succeeded",
        "2026-03-01 08:00:00 UTC: succeeded",
        "2026-03-01 07:00:00 UTC: succeeded",
        "2026-03-01 06:00:00 UTC: succeeded",
    ]
    assert "never" in schedule_row(page, "test.hourly.skip")


def test_the_page_refreshes_its_live_part_by_itself(admin: FlaskClient) -> None:
    page = admin.get("/admin/cron").text
    assert '<div id="live" data-refresh="5">' in page
    assert 'id="schedules"' in page.split('<div id="live"')[1]
    assert "admin.js" in page


def test_pause_and_resume_a_schedule_from_the_page(admin: FlaskClient, db: Engine) -> None:
    page = html.unescape(flashed(admin, post(admin, "/admin/cron/test.hourly.latest/pause")))
    assert "Schedule test.hourly.latest paused: its occurrences are skipped" in page
    row = schedule_row(page, "test.hourly.latest")
    assert "paused since" in row and "by root@example.com" in row and "Resume" in row
    with db.connect() as conn:
        state = conn.execute(text("SELECT name, paused_by FROM cron_state")).one()
    assert tuple(state) == ("test.hourly.latest", "root@example.com")
    again = html.unescape(flashed(admin, post(admin, "/admin/cron/test.hourly.latest/pause")))
    assert "Schedule test.hourly.latest was paused already." in again
    page = html.unescape(flashed(admin, post(admin, "/admin/cron/test.hourly.latest/resume")))
    assert "Schedule test.hourly.latest resumed" in page
    assert "paused" not in schedule_row(page, "test.hourly.latest")
    with db.connect() as conn:
        assert conn.execute(text("SELECT paused_at FROM cron_state")).scalar_one() is None


def test_pause_from_another_site_or_without_a_token_is_refused(
    admin: FlaskClient, db: Engine
) -> None:
    elsewhere = post(
        admin, "/admin/cron/test.hourly.all/pause", headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    tokenless = admin.post(
        "/admin/cron/test.hourly.all/pause", headers={"Origin": "http://localhost"}
    )
    assert tokenless.status_code == 400
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cron_state")).scalar_one() == 0


def test_pause_of_an_unknown_schedule_is_404(admin: FlaskClient, db: Engine) -> None:
    assert post(admin, "/admin/cron/no.such.schedule/pause").status_code == 404
    assert post(admin, "/admin/cron/no.such.schedule/resume").status_code == 404
