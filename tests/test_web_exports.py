"""Report exports through the site: upload, live status, download, and only your own."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from app.config import Settings
from app.jobs.testing import assert_enqueued, drain
from app.models import Export, Job
from tests.web import CSV, body, csrf_token, export_id, messages, sign_up, submit, upload


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
    assert (export.filename, export.column_count) == ("cities.csv", 3)
    [job] = assert_enqueued(session, "reports.build", {"export_id": export.id})
    assert export.job_id == job.job_id
    page = ada.get(response.headers["Location"]).get_data(as_text=True)
    assert ">Waiting</span>" in page and 'id="downloads" hidden' in page


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
@pytest.mark.parametrize("number", ["2147483648", "9" * 40, "0", "-1", "1e3"])
def test_an_export_number_no_export_can_have_is_404(
    ada: FlaskClient, path: str, number: str
) -> None:
    """Past the id column's range too: the database is never asked."""
    assert ada.get(path.format(n=number)).status_code == 404


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


def test_a_small_form_with_too_many_parts_is_413_and_says_so(ada: FlaskClient) -> None:
    """Not 'larger than the limit': the body is small, its parts are many."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', ada.get("/exports").text)
    assert token
    form = MultiDict([("f", "x") for _ in range(1_200)] + [("csrf_token", token.group(1))])
    response = ada.post("/exports", data=form, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "too many fields" in response.text and "larger than" not in response.text


def test_exports_need_an_account(client: FlaskClient) -> None:
    assert client.get("/exports").headers["Location"] == "/login?next=/exports"
    assert client.get("/exports/1/report.pdf").status_code == 303


def test_the_export_page_shows_the_summary_once_the_report_is_ready(
    ada: FlaskClient, db: Engine
) -> None:
    number = export_id(upload(ada, b"city,population\nOslo,709000\nBergen,1291000\nOslo,5\n"))
    assert 'id="summary"' not in ada.get(f"/exports/{number}").text
    drain(db)
    page = ada.get(f"/exports/{number}").text
    assert ">Ready</span>" in page and "3 rows, 2 columns" in page
    assert '<th scope="row">population</th>' in page
    assert '<td class="num">1,291,000</td>' in page  # thousands separators
    assert "Oslo (2); Bergen (1)" in page


def test_the_list_says_waiting_then_ready_with_the_row_count(ada: FlaskClient, db: Engine) -> None:
    upload(ada)
    assert ">Waiting</span>" in ada.get("/exports").text
    drain(db)
    page = ada.get("/exports").text
    assert ">Ready</span>" in page and '<td class="num" data-field="rows">3</td>' in page


def test_the_ready_email_has_a_date_direct_links_and_whole_sentences(
    ada: FlaskClient, db: Engine, mailbox: Path, settings: Settings
) -> None:
    number = export_id(upload(ada))
    drain(db)
    [ready] = [m for m in messages(mailbox, "ada@example.com") if "ready" in m["Subject"]]
    assert parsedate_to_datetime(ready["Date"]).tzinfo is not None
    text = body(ready)
    page = f"{settings.site_url}/exports/{number}"
    lines = text.splitlines()
    assert f"Download the PDF: {page}/report.pdf" in lines
    assert f"Download the summary as CSV: {page}/report.csv" in lines
    assert "Your report for cities.csv is ready: 3 rows, 3 columns." in lines
    raw = next(p for p in mailbox.glob("*.eml") if b"ready" in p.read_bytes()).read_bytes()
    assert b"=\n" not in raw and b"Content-Transfer-Encoding: 8bit" in raw


#: Files that passed the upload and then crashed every attempt of the build.
CRASHED_THE_BUILD = [
    (b"note,comment\n,x\n,y\n", "note: no values"),
    (b"big\n1e308\n-1e308\n", None),
    (b"big\n1e308\n1e308\n", None),
    (b"n\n1\nnan\n2\n", "n: 1 value that is not a finite number (nan, inf) skipped"),
    (b"n,tag\ninf,a\n-inf,b\n", "n: 2 values that are not finite numbers (nan, inf) skipped"),
]


@pytest.mark.parametrize(("content", "said"), CRASHED_THE_BUILD)
def test_empty_and_extreme_columns_make_a_report_that_says_what_it_skipped(
    ada: FlaskClient, db: Engine, content: bytes, said: str | None
) -> None:
    number = export_id(upload(ada, content, "odd.csv"))
    drained = drain(db)
    assert (drained.retried, drained.failed) == ([], [])
    page = ada.get(f"/exports/{number}").text
    assert ">Ready</span>" in page
    if said is not None:
        assert said in page
    assert ada.get(f"/exports/{number}/report.pdf").data.startswith(b"%PDF")


def test_column_names_that_look_like_formulas_are_neutralized_in_the_summary_csv(
    ada: FlaskClient, db: Engine
) -> None:
    content = b'=HYPERLINK("http://evil.example"),+cmd,-2,@SUM(1),\tx\nclick,1,2,3,4\n'
    number = export_id(upload(ada, content, "formula.csv"))
    drain(db)
    summary = list(csv.DictReader(io.StringIO(ada.get(f"/exports/{number}/report.csv").text)))
    assert [row["column"] for row in summary] == [
        '\'=HYPERLINK("http://evil.example")',
        "'+cmd",
        "'-2",
        "'@SUM(1)",
        "x",  # names are stripped of surrounding spaces and tabs
    ]
    assert (
        '<th scope="row">=HYPERLINK(&#34;http://evil.example&#34;)</th>'
        in ada.get(f"/exports/{number}").text
    )


def test_a_bad_row_past_the_head_is_accepted_and_the_export_fails_with_its_line(
    ada: FlaskClient, db: Engine
) -> None:
    content = b"a,b\n" + b"1,2\n" * 20_000 + b"3\n"
    number = export_id(upload(ada, content, "long.csv"))
    drain(db)
    page = ada.get(f"/exports/{number}").text
    assert ">Failed</span>" in page and "Line 20002 has 1 fields, but the header has 2." in page


def upload_named(client: FlaskClient, disposition: str, content: bytes = CSV) -> TestResponse:
    """Upload with a hand-written Content-Disposition, as a hostile client may send it."""
    token = csrf_token(client, "/exports")
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    data = head.encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()
    return client.post(
        "/exports", data=data, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )


BOUNDARY = "pillarstestboundary"


@pytest.mark.parametrize(
    ("disposition", "stored"),
    [
        (
            "filename*=UTF-8''a%0D%0ABcc%3A%20x%40evil.example%0D%0A.csv",
            "a Bcc: x@evil.example .csv",
        ),
        ("filename*=UTF-8''rep%E2%80%AEvsc.csv", "repvsc.csv"),  # right-to-left override (Cf)
        ("filename*=UTF-8''%00%07%1Bnul.csv", "nul.csv"),
        ("filename*=UTF-8''" + "x" * 300 + ".csv", "x" * 116 + ".csv"),
    ],
)
def test_control_and_format_characters_are_stripped_from_stored_names(
    ada: FlaskClient, db: Engine, session: Session, mailbox: Path, disposition: str, stored: str
) -> None:
    number = export_id(upload_named(ada, disposition))
    export = session.get(Export, number)
    assert export is not None and export.filename == stored
    drained = drain(db)
    assert (drained.retried, drained.failed) == ([], [])
    [ready] = [m for m in messages(mailbox, "ada@example.com") if "ready" in m["Subject"]]
    assert str(make_header(decode_header(ready["Subject"]))) == f"Your report for {stored} is ready"
    download = ada.get(f"/exports/{number}/report.pdf")
    assert download.status_code == 200
    assert "\r" not in download.headers["Content-Disposition"]


def test_a_name_stored_with_a_line_break_still_downloads_and_mails(
    ada: FlaskClient, db: Engine, mailbox: Path
) -> None:
    number = export_id(upload(ada))
    with db.begin() as conn:  # stored by a version that kept names as sent
        conn.execute(update(Export).values(filename="evil\r\nX-Header: 1.csv"))
    drained = drain(db)
    assert (drained.retried, drained.failed) == ([], [])
    [ready] = [m for m in messages(mailbox, "ada@example.com") if "ready" in m["Subject"]]
    assert ready["Subject"] == "Your report for evil X-Header: 1.csv is ready"
    download = ada.get(f"/exports/{number}/report.csv")
    assert download.status_code == 200
    assert "evil X-Header: 1-report.csv" in download.headers["Content-Disposition"]
