"""Summary statistics per column: numbers get mean and spread, text gets its common values.

Any finite double must work, `1e308` included: sums and spreads are taken
over values scaled by a power of two (exact, and small enough that nothing
overflows), and a median of two halves is halved before it is added. Values
that are numbers but not finite (`nan`, `inf`) are skipped and counted, so
the report can say so.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.reports.csvfile import Table

#: At most this many distinct whole numbers get one bar each; more get a histogram.
DISCRETE_MAX = 30
TOP = 8
#: Whole numbers beyond this (1e15) are measurements in scientific notation, not counts.
EVERYDAY = 1e15


@dataclass(frozen=True)
class ColumnSummary:
    """What one column holds.

    `kind` is "number" when every non-empty value is a number (finite or not),
    "text" when some is not, and "empty" when the column has no values at all.
    """

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
    #: The finite numbers themselves, for drawing the chart.
    values: list[float] = field(default_factory=list, repr=False)
    #: Numbers that were left out because they are not finite (nan, inf, 1e999).
    skipped: int = 0
    #: Every value is a whole number: months, counts, years.
    integers: bool = False

    @property
    def discrete(self) -> bool:
        """Few enough distinct whole numbers, of everyday size, for one bar per value."""
        if self.kind != "number" or not self.integers or not 0 < self.distinct <= DISCRETE_MAX:
            return False
        return max(abs(self.min or 0.0), abs(self.max or 0.0)) < EVERYDAY

    @property
    def notes(self) -> list[str]:
        """What the report left out of this column, in words for people."""
        notes = []
        if self.kind == "empty":
            notes.append("no values")
        if self.skipped:
            what = (
                "value that is not a finite number"
                if self.skipped == 1
                else ("values that are not finite numbers")
            )
            notes.append(f"{self.skipped:,} {what} (nan, inf) skipped")
            if not self.values:
                notes.append("no finite numbers")
        return notes


def number(text: str) -> float | None:
    """`text` as a float (nan and inf included), or None when it is not a number.

    As a CSV means it: Python's own spellings are not numbers there. float()
    reads "2024_01" (a period code) as 202401 and Arabic-Indic digits as
    digits, which would turn a column of codes into a column of figures.
    """
    if "_" in text or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def scale_of(values: Sequence[float]) -> float:
    """A power of two within a factor of two of the largest |value|: dividing by it is exact.

    Every scaled value is below 2, so sums of up to millions of them stay far
    from overflow; 2**1023, unlike 2**1024, is itself a double.
    """
    largest = max((abs(v) for v in values), default=0.0)
    return math.ldexp(1.0, math.frexp(largest)[1] - 1) if largest else 1.0


def mean(values: Sequence[float], scale: float) -> float:
    """The mean of finite `values`, without the overflow of summing 1e308 twice."""
    return math.fsum(v / scale for v in values) / len(values) * scale


def stdev(values: Sequence[float], centre: float, scale: float) -> float:
    """The sample standard deviation around `centre`, computed on the scaled values."""
    if len(values) < 2:
        return 0.0
    c = centre / scale
    return math.sqrt(math.fsum((v / scale - c) ** 2 for v in values) / (len(values) - 1)) * scale


def median(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ordered[middle - 1] / 2 + ordered[middle] / 2  # halves first: 1e308 + 1e308 is inf


def summarize_column(name: str, cells: list[str]) -> ColumnSummary:
    present = [cell.strip() for cell in cells if cell.strip()]
    missing = len(cells) - len(present)
    counts = Counter(present)
    top = counts.most_common(TOP)
    if not present:
        return ColumnSummary(name, "empty", 0, missing, 0)
    numbers = [number(cell) for cell in present]
    if any(n is None for n in numbers):
        return ColumnSummary(name, "text", len(present), missing, len(counts), top=top)
    values = [n for n in numbers if n is not None and math.isfinite(n)]
    skipped = len(present) - len(values)
    if not values:
        return ColumnSummary(name, "number", 0, missing, 0, top=top, skipped=skipped)
    ordered, scale = sorted(values), scale_of(values)
    centre = mean(values, scale)
    return ColumnSummary(
        name,
        "number",
        len(values),
        missing,
        len(set(values)),
        mean=centre,
        stdev=stdev(values, centre, scale),
        min=ordered[0],
        median=median(ordered),
        max=ordered[-1],
        top=top,
        values=values,
        skipped=skipped,
        integers=all(v.is_integer() for v in values),
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
