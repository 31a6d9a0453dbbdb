"""Reading uploads, summarizing columns, drawing the report, and pruning old exports."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.models import Export, User
from app.reports import csvfile, render, stats
from app.reports.jobs import prune_exports


def test_parse_reads_semicolons_tabs_quotes_and_a_byte_order_mark() -> None:
    table = csvfile.parse('\ufeffname;note\n"Smith, J";"said ""hi"""\n'.encode())
    assert table.header == ["name", "note"]
    assert table.rows == [["Smith, J", 'said "hi"']]
    assert csvfile.parse(b"a\tb\n1\t2\n").rows == [["1", "2"]]


def test_parse_skips_blank_lines_and_names_the_line_of_a_bad_row() -> None:
    assert csvfile.parse(b"a,b\n\n1,2\n\n").rows == [["1", "2"]]
    with pytest.raises(csvfile.InvalidCSV, match="Line 4 has 3 fields"):
        csvfile.parse(b"a,b\n1,2\n\n1,2,3\n")


def test_parse_refuses_unnamed_columns() -> None:
    with pytest.raises(csvfile.InvalidCSV, match="Column 2 of the first line has no name"):
        csvfile.parse(b"a,,c\n1,2,3\n")


def test_numbers_get_mean_and_spread_and_text_gets_common_values() -> None:
    table = csvfile.parse(b"n,word\n1,x\n2,x\n,y\n3.5,\n")
    number, word = stats.summarize(table)
    assert (number.kind, number.count, number.missing) == ("number", 3, 1)
    assert (number.min, number.median, number.max) == (1.0, 2.0, 3.5)
    assert number.mean == pytest.approx(6.5 / 3)
    assert (word.kind, word.count, word.missing, word.top) == ("text", 3, 1, [("x", 2), ("y", 1)])


def test_progress_is_reported_after_each_column() -> None:
    calls: list[tuple[int, int]] = []
    stats.summarize(
        csvfile.parse(b"a,b,c\n1,2,3\n"), lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_the_chart_shows_the_first_numeric_column_else_the_common_values() -> None:
    summaries = stats.summarize(csvfile.parse(b"name,age\na,10\nb,20\nc,20\n"))
    title, labels, counts = render.chart_data(summaries)
    assert title == "Distribution of age" and sum(counts) == 3 and len(labels) == render.BINS
    title, labels, counts = render.chart_data(summaries[:1])
    assert title == "Most common values of name" and counts == [1, 1, 1]


def test_the_pdf_renders_a_constant_column_and_markup_in_the_filename() -> None:
    summaries = stats.summarize(csvfile.parse(b"x\n5\n5\n"))
    assert render.pdf("<b>&.csv", 2, summaries).startswith(b"%PDF")


def test_prune_deletes_exports_past_retention_with_their_files(
    session: Session, db: Engine
) -> None:
    user = User(email="ada@example.com", password_hash="x")
    session.add(user)
    session.flush()
    for age in (0, 3, 10):
        session.add(
            Export(
                user_id=user.id,
                filename=f"{age}.csv",
                row_count=1,
                column_count=1,
                upload=b"a\n1\n",
                created_at=func.now() - text(f"interval '{age} days'"),
            )
        )
    session.commit()
    assert prune_exports(older_than_days=7) == 1
    assert prune_exports(older_than_days=2, batch=1) == 1
    assert session.scalars(select(Export.filename)).all() == ["0.csv"]
