"""Numbers by category: revenue by region, when a file has both kinds of column.

The category is the first text column with a handful of distinct values (a
column of names, all different, says nothing as a grouping); the measures are
the numeric columns that have finite values, at most `MEASURES` of them,
columns of many distinct values first (a sum of months means nothing).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from app.reports.csvfile import Table
from app.reports.stats import ColumnSummary, number, scale_of

CATEGORIES_MAX = 20
#: Groups shown one by one; the rest are added up as "all others".
GROUPS_SHOWN = 12
MEASURES = 4
BLANK = "(blank)"
OTHERS = "(all others)"


@dataclass(frozen=True)
class Group:
    label: str
    rows: int
    #: Per measure: the sum and mean of its finite values in this group (None: none, or
    #: a sum beyond the largest double).
    sums: list[float | None]
    means: list[float | None]


@dataclass(frozen=True)
class Breakdown:
    category: str
    measures: list[str]
    groups: list[Group]


def _category(summaries: list[ColumnSummary]) -> int | None:
    for index, s in enumerate(summaries):
        if s.kind == "text" and 2 <= s.distinct <= CATEGORIES_MAX and s.distinct < s.count:
            return index
    return None


def _total(values: list[float]) -> tuple[float | None, float | None]:
    """(sum, mean) of finite values; the sum is None when it exceeds the largest double."""
    if not values:
        return None, None
    scale = scale_of(values)
    scaled = math.fsum(v / scale for v in values)
    total = scaled * scale  # a float product overflows to inf, never raises
    return (total if math.isfinite(total) else None), scaled / len(values) * scale


def _finite(cell: str) -> float | None:
    value = number(cell)
    return value if value is not None and math.isfinite(value) else None


def breakdown(table: Table, summaries: list[ColumnSummary]) -> Breakdown | None:
    """Group the rows by the category column and total each measure, or None if no pair fits."""
    category = _category(summaries)
    numeric = [i for i, s in enumerate(summaries) if s.kind == "number" and s.values]
    # Few distinct whole numbers (a month, a rating) group rather than measure: last.
    measures = sorted(numeric, key=lambda i: summaries[i].discrete)[:MEASURES]
    if category is None or not measures:
        return None
    rows: dict[str, int] = defaultdict(int)
    values: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in measures])
    for row in table.rows:
        label = row[category].strip() or BLANK
        rows[label] += 1
        for slot, index in enumerate(measures):
            value = _finite(row[index])
            if value is not None:
                values[label][slot].append(value)
    ordered = sorted(rows, key=lambda label: (-rows[label], label))
    shown, rest = ordered[:GROUPS_SHOWN], ordered[GROUPS_SHOWN:]
    merged = {label: (rows[label], values[label]) for label in shown}
    if rest:
        merged[OTHERS] = (
            sum(rows[label] for label in rest),
            [[v for label in rest for v in values[label][slot]] for slot in range(len(measures))],
        )
    groups = []
    for label, (count, per_measure) in merged.items():
        totals = [_total(vs) for vs in per_measure]
        groups.append(Group(label, count, [t[0] for t in totals], [t[1] for t in totals]))
    return Breakdown(summaries[category].name, [summaries[i].name for i in measures], groups)
