"""Reading uploads, summarizing columns, drawing the report, and pruning old exports."""

from __future__ import annotations

import csv
import io
import math

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Export, User
from app.reports import breakdown, charts, csvfile, numbers, render, stats, summary
from app.reports.jobs import prune_exports
from tests import factory


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


def test_codes_that_only_python_reads_as_numbers_stay_text() -> None:
    """float() reads '2024_01' as 202401 and Arabic-Indic digits as digits."""
    table = csvfile.parse("period,code\n2024_01,\u0661\u0662\n2024_02,\u0663\n".encode())
    period, code = stats.summarize(table)
    assert (period.kind, code.kind) == ("text", "text")
    assert period.top == [("2024_01", 1), ("2024_02", 1)]


def test_progress_is_reported_after_each_column() -> None:
    calls: list[tuple[int, int]] = []
    stats.summarize(
        csvfile.parse(b"a,b,c\n1,2,3\n"), lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def months(rows: int = 10_000) -> bytes:
    return ("month\n" + "".join(f"{n % 12 + 1}\n" for n in range(rows))).encode()


def test_whole_numbers_with_few_values_get_one_bar_per_value() -> None:
    [month] = stats.summarize(csvfile.parse(months()))
    chart = charts.column_chart(month)
    assert chart is not None
    assert chart.labels == [str(n) for n in range(1, 13)]
    assert chart.counts == [10_000 // 12 + (n < 10_000 % 12) for n in range(12)]


def test_other_numbers_get_a_histogram_that_counts_every_value() -> None:
    [price] = stats.summarize(
        csvfile.parse(b"price\n" + b"".join(b"%d.5\n" % n for n in range(500)))
    )
    chart = charts.column_chart(price)
    assert chart is not None and len(chart.labels) == charts.BINS and sum(chart.counts) == 500
    assert chart.labels[0] == "0.5" and chart.labels[-1] == "449.6"


def test_every_column_gets_its_chart_text_its_common_values() -> None:
    table = csvfile.parse(b"city,age,score\na,10,1.5\nb,20,2.5\nb,20,3.5\n")
    drawn = [charts.column_chart(s) for s in stats.summarize(table)]
    assert [c.title if c else None for c in drawn] == [
        "city: most common values",
        "age: rows per value",
        "score: distribution",
    ]
    assert drawn[0] is not None and (drawn[0].labels, drawn[0].counts) == (["a", "b"], [1, 2])


def test_numbers_by_category_total_each_group() -> None:
    table = csvfile.parse(
        b"region,revenue,month\nNorth,1000,1\nSouth,250.5,2\nNorth,2000,3\n,5,4\n"
    )
    found = breakdown.breakdown(table, stats.summarize(table))
    assert found is not None and (found.category, found.measures) == (
        "region",
        ["revenue", "month"],
    )
    assert [(g.label, g.rows, g.sums[0]) for g in found.groups] == [
        ("North", 2, 3000.0),
        ("(blank)", 1, 5.0),
        ("South", 1, 250.5),
    ]


def test_no_breakdown_without_a_column_that_groups() -> None:
    table = csvfile.parse(b"name,revenue\na,1\nb,2\nc,3\n")
    assert breakdown.breakdown(table, stats.summarize(table)) is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234567.0, "1,234,567"),
        (-1234567.0, "-1,234,567"),
        (2345.678, "2,345.7"),
        (0.125, "0.125"),
        (3.0e-7, "3e-07"),
        (1e308, "1e+308"),
        (None, ""),
    ],
)
def test_numbers_for_people_have_thousands_separators(value: float | None, shown: str) -> None:
    assert numbers.human(value) == shown


@pytest.mark.parametrize(
    "data",
    [
        b"big\n1e308\n-1e308\n",
        b"big\n1e308\n1e308\n",
        b"big,tag\n1e308,a\n1e308,a\n-1e308,b\n",
        b"tiny\n5e-324\n-5e-324\n",
    ],
)
def test_the_largest_doubles_summarize_without_overflow(data: bytes) -> None:
    table = csvfile.parse(data)
    summaries = stats.summarize(table)
    [big] = [s for s in summaries if s.kind == "number"]
    assert big.mean is not None and math.isfinite(big.mean) and big.stdev is not None
    assert big.max == max(float(row[0]) for row in table.rows)
    found = breakdown.breakdown(table, summaries)
    assert render.pdf("big.csv", len(table.rows), summaries, found).startswith(b"%PDF")


def test_a_histogram_from_minus_to_plus_1e308_labels_every_bin_with_a_number() -> None:
    [big] = stats.summarize(csvfile.parse(b"big\n1e308\n-1e308\n3.5\n"))
    labels, counts = charts.histogram(big.values)
    assert (
        labels[0] == "-1e+308"
        and labels[-1] == "8e+307"
        and counts == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    )
    assert not big.discrete


def test_non_finite_numbers_are_skipped_and_said_so() -> None:
    [n] = stats.summarize(csvfile.parse(b"n\n1\nnan\ninf\n-Infinity\n3\n"))
    assert (n.kind, n.count, n.skipped, n.mean) == ("number", 2, 3, 2.0)
    assert n.notes == ["3 values that are not finite numbers (nan, inf) skipped"]


def test_summary_csv_neutralizes_formulas_and_reads_back_the_names() -> None:
    names = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "'quoted", "plain"]
    header = ",".join(names).encode()
    summaries = stats.summarize(csvfile.parse(header + b"\n-5,x,=y,1,2,3\n"))
    data = summary.write(summaries)
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [row["column"] for row in rows] == [
        "'=HYPERLINK(1)",
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "''quoted",
        "plain",
    ]
    assert rows[0]["min"] == "-5"  # a number the report computed stays a number
    assert rows[2]["top_values"] == "'=y (1)"
    assert [row["column"] for row in summary.read(data)] == names


def test_check_head_reads_only_the_start_of_a_file() -> None:
    good = b"a,b\n" + b"1,2\n" * 20_000
    assert csvfile.check_head(good + b"3\n") == csvfile.Head(["a", "b"], ",")
    with pytest.raises(csvfile.InvalidCSV, match="Line 20002 has 1 fields"):
        csvfile.parse(good + b"3\n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b', "' * 20_000 + b"\n1\n", "20001 columns; at most 100"),
        (b"a" * (csvfile.HEAD_CHARS + 10), "first line is longer than 64 KB"),
        (b",".join(b"c%d" % n for n in range(10_000)) + b"\n1\n", "10000 columns"),
        (b"a,b\n" + b"x" * 20_000 + b",1\n", "Line 2 has a field longer than 10,000"),
        (b"a\n" + b"1\n" * 10 + b"\xff\n", "byte 23 is not text"),
    ],
)
def test_check_head_refuses_hostile_shapes_with_a_message(data: bytes, message: str) -> None:
    with pytest.raises(csvfile.InvalidCSV, match=message):
        csvfile.check_head(data)


def test_the_full_read_refuses_a_two_megabyte_cell() -> None:
    with pytest.raises(csvfile.InvalidCSV, match="Line 2 has a field longer than 10,000"):
        csvfile.parse(b"a,b\n" + b"x" * 2_000_000 + b",1\n")


def test_the_delimiter_is_the_one_that_splits_the_header_most() -> None:
    assert csvfile.delimiter('"Smith, J";"note"') == ";"
    assert csvfile.delimiter("a\tb\tc") == "\t"
    assert csvfile.delimiter("single") == ","


def test_the_pdf_renders_a_constant_column_and_markup_in_the_filename() -> None:
    summaries = stats.summarize(csvfile.parse(b"x\n5\n5\n"))
    assert render.pdf("<b>&.csv", 2, summaries).startswith(b"%PDF")


def test_prune_deletes_exports_past_retention_with_their_files(
    session: Session, db: Engine, settings: Settings
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
    assert prune_exports(factory.context(db, settings), older_than_days=7) == 1
    assert prune_exports(factory.context(db, settings), older_than_days=2, batch=1) == 1
    assert session.scalars(select(Export.filename)).all() == ["0.csv"]
