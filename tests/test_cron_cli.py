"""`flask cron list`, `run NAME`, `pause NAME` and `resume NAME`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, text

from app.web import create_app


@pytest.fixture
def app(db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The app, with the test schedules loaded as cron would load them."""
    monkeypatch.setenv("JOB_MODULES", "tests.jobs,tests.schedules")
    app = create_app({"TESTING": True})
    yield app
    app.extensions["pillars_engine"].dispose()  # close its pooled connections


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def test_cron_list_shows_policy_last_and_next_occurrence(
    runner: FlaskCliRunner, db: Engine
) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state VALUES"
                " ('test.hourly.all', date_trunc('hour', now()) - interval '3 hours')"
            )
        )
    result = runner.invoke(args=["cron", "list"])
    assert result.exit_code == 0, result.output
    assert "pillars.prune_jobs: every day at 03:15 (UTC) -> pillars.prune_jobs" in result.output
    hourly = result.output.split("test.hourly.all:")[1].split("test.hourly.latest")[0]
    assert "missed: all" in hourly
    assert "last: never" not in hourly and "(due now)" in hourly  # three hours behind
    never_run = result.output.split("test.hourly.latest:")[1]
    assert "last job: never" in never_run and "last: never" in never_run


def test_cron_run_enqueues_the_schedules_job_once_now(runner: FlaskCliRunner, db: Engine) -> None:
    result = runner.invoke(args=["cron", "run", "pillars.prune_jobs"])
    assert result.exit_code == 0, result.output
    assert "enqueued job" in result.output
    with db.connect() as conn:
        row = conn.execute(text("SELECT name, cron_name, scheduled_for FROM jobs")).one()
    assert (row.name, row.cron_name) == ("pillars.prune_jobs", "pillars.prune_jobs")
    assert row.scheduled_for is not None


def test_cron_run_names_the_schedules_that_exist_when_given_an_unknown_one(
    runner: FlaskCliRunner,
) -> None:
    result = runner.invoke(args=["cron", "run", "nope"])
    assert result.exit_code != 0
    assert "no schedule is named 'nope'" in result.output
    assert "pillars.prune_jobs" in result.output


def test_cron_list_names_state_left_by_a_removed_schedule(
    runner: FlaskCliRunner, db: Engine
) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cron_state (name, last_run_at, fingerprint, removed_at) VALUES"
                " ('old.digest', '2026-03-01 06:00+00', 'every 1 days at 06:00:00 (UTC)',"
                " '2026-03-02 10:00+00')"
            )
        )
    result = runner.invoke(args=["cron", "list"])
    assert result.exit_code == 0, result.output
    orphan = result.output.split("old.digest:")[1]
    assert "removed from code (state kept: every 1 days at 06:00:00 (UTC))" in orphan
    assert "forgotten: 2026-04-01 10:00:00+00:00" in orphan


def test_cron_pause_and_resume_are_stored_and_shown_by_list(
    runner: FlaskCliRunner, db: Engine
) -> None:
    paused = runner.invoke(args=["cron", "pause", "test.hourly.skip"])
    assert paused.exit_code == 0, paused.output
    assert paused.output == (
        "schedule test.hourly.skip paused: its occurrences are skipped until it is resumed\n"
    )
    assert "was paused already" in runner.invoke(args=["cron", "pause", "test.hourly.skip"]).output
    with db.connect() as conn:
        by = conn.execute(text("SELECT paused_by FROM cron_state")).scalar_one()
    assert by.endswith(" (flask cron)")
    listed = runner.invoke(args=["cron", "list"]).output.split("test.hourly.skip:")[1]
    assert "paused: since " in listed and by in listed
    resumed = runner.invoke(args=["cron", "resume", "test.hourly.skip"])
    assert (
        resumed.output
        == "schedule test.hourly.skip resumed: it runs again from its next occurrence\n"
    )
    assert "was not paused" in runner.invoke(args=["cron", "resume", "test.hourly.skip"]).output


def test_cron_pause_of_an_unknown_schedule_names_those_that_exist(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["cron", "pause", "nope"])
    assert result.exit_code != 0
    assert "no schedule is named 'nope'" in result.output and "test.hourly.all" in result.output


def test_cron_list_shows_each_schedules_last_job(runner: FlaskCliRunner, db: Engine) -> None:
    runner.invoke(args=["cron", "run", "pillars.prune_jobs"])
    listed = runner.invoke(args=["cron", "list"]).output
    prune = re.split(r"\n(?=\S)", listed.split("pillars.prune_jobs:")[1])[0]
    assert re.search(r"last job: queued \([0-9a-f-]{36}, for \d{4}-", prune)
