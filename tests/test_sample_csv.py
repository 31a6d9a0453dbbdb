"""The sample CSV the README points newcomers at builds a report with every kind of figure."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Engine

from app.jobs.testing import drain
from tests.web import export_id, sign_up, upload

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "sample-sales.csv"


def test_the_sample_csv_builds_a_report_of_every_column(client: FlaskClient, db: Engine) -> None:
    sign_up(client, "newcomer@example.com")
    number = export_id(upload(client, SAMPLE.read_bytes(), filename=SAMPLE.name))
    drain(db)
    page = client.get(f"/exports/{number}").text
    assert "288 rows, 5 columns" in page
    summary = list(csv.DictReader(io.StringIO(client.get(f"/exports/{number}/report.csv").text)))
    kinds = {row["column"]: row["kind"] for row in summary}
    assert kinds == {
        "month": "number",
        "region": "text",
        "product": "text",
        "units": "number",
        "revenue": "number",
    }
    assert client.get(f"/exports/{number}/report.pdf").data.startswith(b"%PDF")
