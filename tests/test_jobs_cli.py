"""`flask jobs ...` and `flask users make-admin`, run as an operator would."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import enqueue
from app.jobs.testing import drain
from app.models import Job, User
from tests.web import sign_up


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def test_enqueue_prints_the_new_job_id(runner: FlaskCliRunner, db: Engine) -> None:
    result = runner.invoke(
        args=[
            "jobs",
            "enqueue",
            "test.add",
            "--payload",
            '{"a": 2}',
            "--queue",
            "mail",
            "--priority",
            "3",
            "--run-at",
            "2030-01-01T06:00:00+00:00",
        ]
    )
    assert result.exit_code == 0, result.output
    with Session(db) as session:
        row = session.get_one(Job, uuid.UUID(result.output.strip()))
    assert (row.payload, row.queue, row.priority, row.run_at.year) == ({"a": 2}, "mail", 3, 2030)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no handler is registered for job 'nope'"),
        (["test.add", "--payload", "{a: 1}"], "not JSON"),
        (["test.add", "--payload", "[1]"], "must be a JSON object"),
        (["test.add", "--payload", '{"a": "x"}'], "'a' must be int"),
        (["test.add", "--run-at", "tomorrow"], "Invalid value for '--run-at'"),
        (["test.add", "--priority", "high"], "Invalid value for '--priority'"),
    ],
)
def test_enqueue_refuses_bad_input_clearly(
    runner: FlaskCliRunner, db: Engine, args: list[str], message: str
) -> None:
    result = runner.invoke(args=["jobs", "enqueue", *args])
    assert result.exit_code != 0 and message in result.output
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0


def test_list_show_retry_cancel(runner: FlaskCliRunner, db: Engine) -> None:
    with Session(db) as session:
        failed = enqueue(session, "test.login", {"user": "ann", "password": "hunter2-pw"})
        queued = enqueue(session, "test.add", {"a": 1}, delay=3600)
        session.commit()
    drain(db)
    listing = runner.invoke(args=["jobs", "list", "--state", "failed"]).output
    assert str(failed) in listing and str(queued) not in listing
    shown = runner.invoke(args=["jobs", "show", str(failed)]).output
    assert "PermissionError" in shown and "hunter2-pw" not in shown and '"***"' in shown
    assert runner.invoke(args=["jobs", "retry", str(failed)]).exit_code == 0
    assert runner.invoke(args=["jobs", "cancel", str(queued)]).exit_code == 0
    with Session(db) as session:
        assert session.get_one(Job, failed).state == "queued"
        assert session.get_one(Job, queued).state == "cancelled"
    again = runner.invoke(args=["jobs", "cancel", str(queued)])
    assert again.exit_code == 1 and "is not queued or running" in again.output
    assert "is not a job id" in runner.invoke(args=["jobs", "show", "42"]).output


def test_what_a_job_stored_cannot_rewrite_the_terminal_or_forge_a_line(
    runner: FlaskCliRunner, db: Engine
) -> None:
    """An error message comes from a handler's exception, and so from whatever it was
    given: printed raw, ESC sequences reached the operator's terminal."""
    with Session(db) as session:
        job_id = enqueue(session, "test.terminal")
        session.commit()
    drain(db)
    shown = runner.invoke(args=["jobs", "show", str(job_id)]).output
    assert "\x1b" not in shown and "\\x1b[2J\\x1b[31mred\\nstate: succeeded" in shown
    assert not any(line.startswith("state: succeeded") for line in shown.splitlines())
    assert "  Traceback (most recent call last):\n" in shown  # a traceback keeps its lines


def test_list_pages_with_the_printed_cursor(runner: FlaskCliRunner, db: Engine) -> None:
    with Session(db) as session:
        for n in range(3):
            enqueue(session, "test.add", {"a": n})
            session.commit()
    first = runner.invoke(args=["jobs", "list", "--limit", "2"]).output
    cursor = first.strip().splitlines()[-1].removeprefix("next page: --after ")
    second = runner.invoke(args=["jobs", "list", "--limit", "2", "--after", cursor]).output
    assert len(first.splitlines()) == 3 and len(second.splitlines()) == 1
    assert "not a cursor" in runner.invoke(args=["jobs", "list", "--after", "x"]).output


def test_stats_warns_about_jobs_no_live_worker_knows(runner: FlaskCliRunner, db: Engine) -> None:
    with Session(db) as session:
        enqueue(session, "test.add", {"a": 1})
        session.commit()
    output = runner.invoke(args=["jobs", "stats"]).output
    assert "default: waiting=0 queued=1" in output
    assert "warning: 1 queued 'test.add' job(s) wait, no live worker knows them" in output


def test_alive_exits_non_zero_without_a_fresh_heartbeat(runner: FlaskCliRunner, db: Engine) -> None:
    assert runner.invoke(args=["jobs", "alive"]).exit_code == 1
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workers (worker_id, kind, hostname, pid) VALUES ('c', 'cron', 'h', 1)"
            )
        )
    assert runner.invoke(args=["jobs", "alive", "--kind", "cron"]).exit_code == 0
    assert runner.invoke(args=["jobs", "alive", "--kind", "worker"]).exit_code == 1


def test_pause_and_resume(runner: FlaskCliRunner, db: Engine) -> None:
    assert runner.invoke(args=["jobs", "pause", "mail"]).output == "paused mail\n"
    with db.connect() as conn:
        assert conn.execute(text("SELECT queue FROM queue_pauses")).scalar_one() == "mail"
    runner.invoke(args=["jobs", "resume", "mail"])
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM queue_pauses")).scalar_one() == 0


def test_make_admin_promotes_an_existing_user(
    runner: FlaskCliRunner, client: FlaskClient, db: Engine
) -> None:
    sign_up(client, "ops@example.com")
    result = runner.invoke(args=["users", "make-admin", "OPS@example.com"])
    assert result.exit_code == 0 and "ops@example.com is now an admin" in result.output
    with Session(db) as session:
        assert session.query(User).one().is_admin
    missing = runner.invoke(args=["users", "make-admin", "nobody@example.com"])
    assert missing.exit_code == 1 and "sign up first" in missing.output


def test_metrics_endpoint_answers_in_prometheus_format(client: FlaskClient, db: Engine) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "# TYPE pillars_jobs_finished_total counter" in response.text
