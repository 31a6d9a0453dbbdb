"""Numbers written for people (thousands separators) and for files (exact, plain)."""

from __future__ import annotations

import math

#: Above this a whole number is written in scientific notation: digits past 15 are noise.
EXACT_WHOLE = 1e15


def human(value: float | None) -> str:
    """`1,234,567`, `2,345.7`, `0.125`, `1e+308`: separators, four significant digits."""
    if value is None:
        return ""
    value = float(value)  # chart axes hand over ints
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if value.is_integer() and size < EXACT_WHOLE:
        return f"{int(value):,}"
    if size >= EXACT_WHOLE or size < 1e-4:
        return f"{value:.4g}"
    if size >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def plain(value: float | None) -> str:
    """Ten significant digits, no separators, for the summary CSV; whole numbers as integers."""
    if value is None:
        return ""
    if math.isfinite(value) and value.is_integer() and abs(value) < EXACT_WHOLE:
        return str(int(value))
    return f"{value:.10g}"
