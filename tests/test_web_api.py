"""The JSON status of a job you own, for scripts and for the export page's live status."""

from __future__ import annotations

import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from app.jobs.testing import drain
from app.models import Export, Job
from tests.web import export_id, sign_up, upload


def job_url(session: Session, number: int) -> str:
    export = session.get(Export, number)
    assert export is not None
    return f"/api/jobs/{export.job_id}"


def test_status_follows_the_job_from_queued_through_progress_to_done(
    client: FlaskClient, session: Session, db: Engine
) -> None:
    sign_up(client, "ada@example.com")
    number = export_id(upload(client))
    url = job_url(session, number)
    queued = client.get(url).get_json()
    assert (queued["state"], queued["label"], queued["result"]) == ("queued", "Waiting", None)
    with db.begin() as conn:  # what a running worker's ctx.set_progress writes
        conn.execute(
            update(Job).values(state="running", progress=0.4, progress_message="column 3 of 5")
        )
    running = client.get(url).get_json()
    assert (running["state"], running["progress"], running["label"]) == (
        "running",
        0.4,
        "Building — column 3 of 5",
    )
    with db.begin() as conn:
        conn.execute(update(Job).values(state="queued", progress=None))
    drain(db)
    done = client.get(url).get_json()
    assert (done["state"], done["label"], done["progress"], done["error"]) == (
        "succeeded",
        "Ready",
        1.0,
        None,
    )
    assert done["result"]["pdf"] == f"/exports/{number}/report.pdf"
    assert client.get(done["result"]["pdf"]).status_code == 200


def test_status_of_a_failed_build_says_why_without_the_traceback(
    client: FlaskClient, session: Session, db: Engine
) -> None:
    sign_up(client, "ada@example.com")
    number = export_id(upload(client))
    with db.begin() as conn:
        conn.execute(update(Job).values(state="failed", last_error="MemoryError: boom"))
    failed = client.get(job_url(session, number)).get_json()
    assert (failed["state"], failed["label"]) == ("failed", "Failed")
    assert failed["error"] == "The report could not be built. The error has been logged."
    assert "could not be built" in client.get(f"/exports/{number}").text


def test_a_file_the_worker_cannot_read_ends_the_export_with_the_reason_and_no_retry(
    client: FlaskClient, session: Session, db: Engine
) -> None:
    sign_up(client, "ada@example.com")
    number = export_id(upload(client))
    with db.begin() as conn:  # e.g. a file accepted by an older, laxer version of the site
        conn.execute(update(Export).values(upload=b"a,b\n1\n"))
    drained = drain(db)
    assert (len(drained.retried), len(drained.failed)) == (0, 0)  # a bad file cannot get better
    failed = client.get(job_url(session, number)).get_json()
    assert failed["state"] == "failed" and "Line 2 has 1 fields" in failed["error"]


def test_the_list_of_exports_gives_each_state_for_the_page_to_refresh(
    client: FlaskClient, db: Engine
) -> None:
    sign_up(client, "ada@example.com")
    first = export_id(upload(client, filename="first.csv"))
    drain(db)
    second = export_id(upload(client, filename="second.csv"))
    listed = client.get("/api/exports").get_json()["exports"]
    assert [(e["id"], e["label"], e["rows"], e["columns"]) for e in listed] == [
        (second, "Waiting", None, 3),
        (first, "Ready", 3, 3),
    ]


def test_someone_elses_job_and_unknown_jobs_are_404(app: Flask, session: Session) -> None:
    ada = app.test_client()
    sign_up(ada, "ada@example.com")
    url = job_url(session, export_id(upload(ada)))
    bob = app.test_client()
    sign_up(bob, "bob@example.com")
    assert bob.get(url).status_code == 404
    assert bob.get(url).get_json() == {"error": "No such job."}
    assert bob.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert bob.get("/api/jobs/not-a-uuid").status_code == 404


def test_the_api_answers_401_in_json_without_a_session(client: FlaskClient) -> None:
    response = client.get(f"/api/jobs/{uuid.uuid4()}")
    assert response.status_code == 401
    assert response.get_json() == {"error": "Sign in first."}
