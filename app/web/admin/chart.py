"""The overview's chart of jobs finished per minute, as geometry for an inline SVG.

Drawn on the server: the page's Content-Security-Policy allows no script or
stylesheet from elsewhere, and a chart that needs no JavaScript also shows in
a page that was saved or printed. The template only places what this module
computes; colours come from the stylesheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    #: (y, label) of the horizontal grid lines
    ticks: list[tuple[float, str]]
    #: (x, label) of the time axis
    times: list[tuple[float, str]]
    succeeded: int
    failed: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    right: int = WIDTH - RIGHT
    baseline: int = TOP + PLOT_H


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k at least `value`, so grid lines fall on round numbers."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    raise AssertionError("unreachable")


def _hhmm(minute: datetime) -> str:
    return minute.astimezone(UTC).strftime("%H:%M")


def per_minute(minutes: list[tuple[datetime, int, int]]) -> Chart:
    """Stacked bars, succeeded below and failed above, one per minute, oldest on the left."""
    top = nice_ceiling(max((ok + bad for _, ok, bad in minutes), default=0))
    scale = PLOT_H / top
    slot = PLOT_W / max(len(minutes), 1)
    baseline = TOP + PLOT_H
    bars = []
    for index, (minute, ok, bad) in enumerate(minutes):
        ok_h, bad_h = ok * scale, bad * scale
        title = f"{_hhmm(minute)} UTC: {ok:,} succeeded, {bad:,} failed"
        x = LEFT + index * slot + slot * 0.1
        bars.append(
            Bar(x, slot * 0.8, baseline - ok_h, ok_h, baseline - ok_h - bad_h, bad_h, title)
        )
    ticks = [(baseline - PLOT_H * f, f"{round(top * f):,}") for f in (0, 0.5, 1)]
    if top == 1:
        ticks = [(baseline, "0"), (TOP, "1")]
    times = [
        (LEFT + index * slot + slot / 2, _hhmm(minutes[index][0]))
        for index in sorted({*range(0, len(minutes), 15), len(minutes) - 1} - {-1})
    ]
    return Chart(
        bars,
        ticks,
        times,
        succeeded=sum(ok for _, ok, _ in minutes),
        failed=sum(bad for _, _, bad in minutes),
    )
