"""The summary CSV: one line per column of the upload, safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@`, tab or CR is a formula to Excel,
LibreOffice and Google Sheets, so text that came from the upload (column
names, common values) gets a leading apostrophe, which those programs hide.
Numbers the report computed are written plainly: `-5` stays a number. The
export page reads the same file back, so the page and the download agree.
"""

from __future__ import annotations

import csv
import io

from app.reports.numbers import plain
from app.reports.stats import ColumnSummary

FIELDS = (
    "column",
    "kind",
    "count",
    "missing",
    "mean",
    "stdev",
    "min",
    "median",
    "max",
    "distinct",
    "top_values",
    "notes",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: How many common values the CSV lists per column.
TOP_LISTED = 5


def neutralize(text: str) -> str:
    """Text a spreadsheet shows as it is instead of evaluating it.

    Text that starts with an apostrophe gets one more, so `restore` can tell
    the two apart and a spreadsheet still shows the original.
    """
    return "'" + text if text.startswith((*FORMULA_STARTS, "'")) else text


def restore(cell: str) -> str:
    """The text `neutralize` was given (for showing a name read back from the CSV)."""
    return cell[1:] if cell[:1] == "'" and cell[1:].startswith((*FORMULA_STARTS, "'")) else cell


def _top(summary: ColumnSummary) -> str:
    return "; ".join(f"{value} ({count:,})" for value, count in summary.top[:TOP_LISTED])


def write(summaries: list[ColumnSummary]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for s in summaries:
        numbers = (s.mean, s.stdev, s.min, s.median, s.max)
        top = _top(s) if s.kind == "text" else ""
        writer.writerow(
            [neutralize(s.name), s.kind, s.count, s.missing, *map(plain, numbers), s.distinct]
            + [neutralize(top), neutralize("; ".join(s.notes))]
        )
    return out.getvalue().encode()


def read(data: bytes) -> list[dict[str, str]]:
    """The rows of a summary CSV as written by `write`, with user text restored."""
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    for row in rows:
        for key in ("column", "top_values", "notes"):
            row[key] = restore(row.get(key) or "")
    return rows
