"""`flask jobs delete`, `--json` for list, show and stats, and the record of what the CLI did."""

from __future__ import annotations

import getpass
import json
import socket
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, text

from tests import factory
from tests.admin import state_of


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def me() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def recorded(db: Engine) -> list[tuple[str, str, str, str | None, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT actor, via, action, CAST(job_id AS text), subject FROM operator_actions")
        ).all()
    return [(a, v, act, job, subject) for a, v, act, job, subject in rows]


def test_delete_removes_a_finished_job_and_refuses_a_running_one(
    runner: FlaskCliRunner, db: Engine
) -> None:
    done, running = factory.row(db, state="succeeded"), factory.row(db, state="running")
    result = runner.invoke(args=["jobs", "delete", str(done)])
    assert result.exit_code == 0 and result.output.strip() == f"deleted {done}"
    refused = runner.invoke(args=["jobs", "delete", str(running)])
    assert refused.exit_code == 1 and "is running (cancel it first)" in refused.output
    assert state_of(db, done) is None and state_of(db, running) == "running"
    assert recorded(db) == [(me(), "cli", "delete", str(done), "")]


def test_delete_failed_removes_every_failed_job_matching_the_filter(
    runner: FlaskCliRunner, db: Engine
) -> None:
    gone = [factory.row(db, queue="mail", state="failed") for _ in range(2)]
    kept = factory.row(db, queue="reports", state="failed")
    result = runner.invoke(args=["jobs", "delete", "--failed", "--queue", "mail"])
    assert result.exit_code == 0 and result.output.strip() == "deleted 2 job(s)"
    assert [state_of(db, j) for j in (*gone, kept)] == [None, None, "failed"]
    assert recorded(db) == [(me(), "cli", "delete", None, "every failed job in queue 'mail'")]


@pytest.mark.parametrize("args", [[], ["--failed", str(uuid.uuid4())], ["nope"]])
def test_delete_needs_one_job_id_or_failed(
    runner: FlaskCliRunner, db: Engine, args: list[str]
) -> None:
    result = runner.invoke(args=["jobs", "delete", *args])
    assert result.exit_code == 2


def test_list_json_is_one_document_with_the_next_cursor(runner: FlaskCliRunner, db: Engine) -> None:
    ids = [factory.row(db, queue="mail") for _ in range(3)]
    result = runner.invoke(args=["jobs", "list", "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [job["id"] for job in document["jobs"]] == [str(ids[2]), str(ids[1])]
    assert document["next"] == str(ids[1])
    assert document["jobs"][0]["queue"] == "mail" and document["jobs"][0]["state"] == "queued"
    last = runner.invoke(args=["jobs", "list", "--json", "--after", document["next"]])
    assert json.loads(last.output) == {"jobs": [json.loads(last.output)["jobs"][0]], "next": None}


def test_show_json_masks_secrets_and_lists_what_people_did(
    runner: FlaskCliRunner, db: Engine
) -> None:
    job_id = factory.row(db, "test.login", {"user": "ada", "password": "s3cret"}, state="failed")
    assert runner.invoke(args=["jobs", "retry", str(job_id)]).exit_code == 0
    result = runner.invoke(args=["jobs", "show", str(job_id), "--json"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    document = json.loads(result.output)
    assert document["payload"] == {"user": "ada", "password": "***"}
    assert document["state"] == "queued" and document["errors"] == []
    assert [(a["actor"], a["via"], a["action"]) for a in document["actions"]] == [
        (me(), "cli", "retry")
    ]
    plain = runner.invoke(args=["jobs", "show", str(job_id)]).output
    assert f"{me()} (cli): retry" in plain


def test_stats_json_has_counts_processes_and_orphans(runner: FlaskCliRunner, db: Engine) -> None:
    factory.row(db, queue="mail")
    factory.row(db, queue="mail", state="failed")
    result = runner.invoke(args=["jobs", "stats", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["counts"]["queued"] == {"mail": 1}
    assert document["totals"]["failed"] == 1 and document["estimated"] == []
    assert document["orphaned"] == {"test.add": 1}  # no worker runs
    assert document["processes"] == [] and document["oldest_due_seconds"] >= 0


def test_every_cli_change_is_recorded_as_the_shell_user(runner: FlaskCliRunner, db: Engine) -> None:
    job_id = factory.row(db, state="queued")
    for args in (
        ["jobs", "cancel", str(job_id)],
        ["jobs", "retry", str(job_id)],
        ["jobs", "pause", "mail"],
        ["jobs", "resume", "mail"],
        ["jobs", "enqueue", "test.noop"],
    ):
        assert runner.invoke(args=args).exit_code == 0, args
    actions = [(action, job, subject) for _, via, action, job, subject in recorded(db)]
    assert actions[:4] == [
        ("cancel", str(job_id), ""),
        ("retry", str(job_id), ""),
        ("pause", None, "queue 'mail'"),
        ("resume", None, "queue 'mail'"),
    ]
    assert actions[4][0] == "enqueue" and actions[4][1] is not None
    assert {actor for actor, *_ in recorded(db)} == {me()}
