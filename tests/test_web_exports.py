"""Report exports through the site: upload, live status, download, and only your own."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.jobs.testing import assert_enqueued, drain
from app.models import Export, Job
from tests.web import CSV, export_id, messages, sign_up, submit, upload


@pytest.fixture
def ada(app: Flask) -> FlaskClient:
    """A signed-in user's browser."""
    client = app.test_client()
    sign_up(client, "ada@example.com")
    return client


def exports(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Export)) or 0


def report_jobs(session: Session) -> int:
    query = select(func.count()).select_from(Job).where(Job.name == "reports.build")
    return session.scalar(query) or 0


def test_upload_stores_the_file_and_queues_its_report_then_answers_at_once(
    ada: FlaskClient, session: Session
) -> None:
    response = upload(ada)
    export = session.get(Export, export_id(response))
    assert export is not None
    assert (export.filename, export.row_count, export.column_count) == ("cities.csv", 3, 3)
    [job] = assert_enqueued(session, "reports.build", {"export_id": export.id})
    assert export.job_id == job.job_id
    page = ada.get(response.headers["Location"]).get_data(as_text=True)
    assert "waiting for a worker" in page and 'id="downloads" hidden' in page


def test_the_worker_builds_pdf_and_csv_and_emails_the_owner(
    ada: FlaskClient, db: Engine, mailbox: Path
) -> None:
    number = export_id(upload(ada))
    drain(db)
    pdf = ada.get(f"/exports/{number}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert "cities-report.pdf" in pdf.headers["Content-Disposition"]
    summary = list(csv.DictReader(io.StringIO(ada.get(f"/exports/{number}/report.csv").text)))
    assert [row["column"] for row in summary] == ["city", "population", "area"]
    assert summary[1]["kind"] == "number" and summary[1]["max"] == "709000"
    [ready] = [m for m in messages(mailbox, "ada@example.com") if "ready" in m["Subject"]]
    assert ready["Subject"] == "Your report for cities.csv is ready"


def test_downloads_wait_for_the_report_with_409(ada: FlaskClient) -> None:
    number = export_id(upload(ada))
    response = ada.get(f"/exports/{number}/report.pdf")
    assert response.status_code == 409 and "not ready yet" in response.text


def test_the_list_shows_only_your_own_exports(app: Flask, ada: FlaskClient) -> None:
    upload(ada, filename="mine.csv")
    bob = app.test_client()
    sign_up(bob, "bob@example.com")
    upload(bob, filename="bobs.csv")
    page = ada.get("/exports").text
    assert "mine.csv" in page and "bobs.csv" not in page


@pytest.mark.parametrize(
    "path", ["/exports/{n}", "/exports/{n}/report.pdf", "/exports/{n}/report.csv"]
)
def test_another_users_export_is_404(app: Flask, ada: FlaskClient, db: Engine, path: str) -> None:
    number = export_id(upload(ada))
    drain(db)
    bob = app.test_client()
    sign_up(bob, "bob@example.com")
    assert bob.get(path.format(n=number)).status_code == 404
    assert ada.get(path.format(n=number)).status_code == 200


@pytest.mark.parametrize(
    ("content", "filename", "status", "message"),
    [
        (b"", "empty.csv", 400, "The file is empty."),
        (b"name,age\n", "header.csv", 400, "a header line but no rows"),
        (b"a,b\n1,2\n3\n", "ragged.csv", 400, "Line 3 has 1 fields, but the header has 2."),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "picture.csv", 400, "binary data"),
        (b"\xff\xfe\xfa,b\n", "latin.csv", 400, "not a UTF-8 text file"),
        (CSV, "cities.xlsx", 400, "is not a CSV file"),
        (b"a\n" + b"1\n" * 40_000, "big.csv", 413, "larger than the 64 KB limit"),
    ],
)
def test_a_bad_upload_gets_a_clear_message_and_writes_nothing(
    app: Flask,
    ada: FlaskClient,
    session: Session,
    content: bytes,
    filename: str,
    status: int,
    message: str,
) -> None:
    app.config["PILLARS_SETTINGS"] = replace(
        app.config["PILLARS_SETTINGS"], upload_max_bytes=64 * 1024
    )
    response = upload(ada, content, filename)
    assert response.status_code == status
    assert message in response.text
    assert (exports(session), report_jobs(session)) == (0, 0)


def test_an_upload_without_a_file_is_400(ada: FlaskClient, session: Session) -> None:
    response = submit(ada, "/exports", {})
    assert response.status_code == 400 and "Choose a CSV file" in response.text
    assert exports(session) == 0


def test_a_request_body_over_the_limit_is_413_with_a_page_that_says_so(
    ada: FlaskClient, app: Flask
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = upload(ada, b"a\n" + b"1\n" * 1000)
    assert response.status_code == 413 and "larger than the limit" in response.text


def test_exports_need_an_account(client: FlaskClient) -> None:
    assert client.get("/exports").headers["Location"] == "/login?next=/exports"
    assert client.get("/exports/1/report.pdf").status_code == 303
