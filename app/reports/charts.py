"""What each column's chart shows, as plain data: the PDF draws it, tests read it.

Whole numbers with few distinct values (months 1-12, ratings 1-5) get one bar
per value: equal-width bins would put 12 values into 10 bars and show false
spikes. Other numbers get a histogram, text its most common values. The bins
are computed on halved values, so a column spanning -1e308 to 1e308 does not
overflow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from app.reports.breakdown import Breakdown
from app.reports.numbers import EXACT_WHOLE, human
from app.reports.stats import ColumnSummary

BINS = 10
LABEL_CHARS = 18


@dataclass(frozen=True)
class Chart:
    title: str
    labels: list[str]
    counts: list[float]
    #: Bars drawn sideways, for text labels that need room.
    horizontal: bool = False


def short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def histogram(values: list[float], bins: int = BINS) -> tuple[list[str], list[int]]:
    """Count `values` into equal-width bins; returns (labels of each bin's start, counts)."""
    low, high = min(values), max(values)
    half_width = (high / 2 - low / 2) / bins
    if half_width == 0:
        return [human(low)], [len(values)]
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value / 2 - low / 2) / half_width))] += 1
    labels = [human(2 * (low / 2 + half_width * i)) for i in range(bins)]  # halves again
    return labels, counts


def column_chart(summary: ColumnSummary) -> Chart | None:
    """The chart of one column, or None when it has nothing to draw."""
    if summary.kind == "number" and summary.values:
        if summary.discrete:
            counts = sorted(Counter(summary.values).items())
            title = f"{summary.name}: rows per value"
            return Chart(title, [human(v) for v, _ in counts], [c for _, c in counts])
        labels, binned = histogram(summary.values)
        return Chart(f"{summary.name}: distribution", labels, list(binned))
    if summary.kind == "text" and summary.top and summary.top[0][1] > 1:
        top = summary.top[::-1]  # drawn bottom-up: the most common value on top
        title = f"{summary.name}: most common values"
        return Chart(title, [short(v) for v, _ in top], [c for _, c in top], horizontal=True)
    return None


def breakdown_chart(found: Breakdown) -> Chart | None:
    """Each group's total of the first measure, when every total is a plain-sized number.

    Totals beyond 1e15 stay in the table only: an axis up to 1e308 helps no one.
    """
    sums = [group.sums[0] for group in found.groups]
    if any(total is None or abs(total) >= EXACT_WHOLE for total in sums):
        return None
    labels = [short(group.label) for group in found.groups][::-1]
    title = f"{found.measures[0]} by {found.category}: total"
    return Chart(title, labels, [total or 0.0 for total in sums][::-1], horizontal=True)
