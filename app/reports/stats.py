"""Summary statistics per column: numbers get mean and spread, text gets its common values."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from app.reports.csvfile import Table

FIELDS = ("column", "kind", "count", "missing", "mean", "stdev", "min", "median", "max", "distinct")


@dataclass(frozen=True)
class ColumnSummary:
    """What one column holds. `kind` is "number" when every non-empty value is a number."""

    name: str
    kind: str
    count: int
    missing: int
    distinct: int
    mean: float | None = None
    stdev: float | None = None
    min: float | None = None
    median: float | None = None
    max: float | None = None
    #: The most common values with their counts, most common first.
    top: list[tuple[str, int]] = field(default_factory=list)
    #: The numbers themselves, for drawing the chart.
    values: list[float] = field(default_factory=list, repr=False)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def summarize_column(name: str, cells: list[str]) -> ColumnSummary:
    present = [cell.strip() for cell in cells if cell.strip()]
    missing = len(cells) - len(present)
    counts = Counter(present)
    top = counts.most_common(5)
    numbers = [_number(cell) for cell in present]
    if not present or any(n is None for n in numbers):
        return ColumnSummary(name, "text", len(present), missing, len(counts), top=top)
    values = [n for n in numbers if n is not None]
    return ColumnSummary(
        name,
        "number",
        len(values),
        missing,
        len(counts),
        mean=statistics.fmean(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        median=statistics.median(values),
        max=max(values),
        top=top,
        values=values,
    )


def summarize(
    table: Table, on_column: Callable[[int, int], None] | None = None
) -> list[ColumnSummary]:
    """Summarize every column; `on_column(done, total)` is called after each, for progress."""
    summaries = []
    for index, name in enumerate(table.header):
        summaries.append(summarize_column(name, [row[index] for row in table.rows]))
        if on_column is not None:
            on_column(index + 1, len(table.header))
    return summaries


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def to_csv(summaries: list[ColumnSummary]) -> bytes:
    """The summary as a CSV file: one line per column of the upload."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for s in summaries:
        numbers = (s.mean, s.stdev, s.min, s.median, s.max)
        writer.writerow([s.name, s.kind, s.count, s.missing, *map(_cell, numbers), s.distinct])
    return out.getvalue().encode()
