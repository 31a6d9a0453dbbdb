"""The PDF report: an overview table, numbers by category, and a chart per column.

ReportLab draws charts itself (`reportlab.graphics`), so the worker needs no
plotting library. Only the `reports.build` job imports this module. Text
from the upload goes into `Paragraph`s escaped (they read a small markup
language) and into table cells and drawings as plain strings.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from app.reports.breakdown import Breakdown
from app.reports.charts import Chart, breakdown_chart, column_chart, short
from app.reports.numbers import human
from app.reports.stats import ColumnSummary

ACCENT = colors.HexColor("#2f5d8a")
STRIPES = [colors.white, colors.HexColor("#f1f4f8")]
#: A4 less the margins: two charts side by side.
CHART_WIDTH, CHART_HEIGHT = 8.2 * cm, 5.6 * cm
STYLES = getSampleStyleSheet()


def escape(text: str) -> str:
    """Paragraph text is a small markup language: keep a name from being read as tags."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def draw(chart: Chart, width: float = CHART_WIDTH, height: float = CHART_HEIGHT) -> Drawing:
    """One bar chart with its title; sideways when its labels are text."""
    drawing = Drawing(width, height)
    bars: Any = HorizontalBarChart() if chart.horizontal else VerticalBarChart()
    left = 3.0 * cm if chart.horizontal else 1.4 * cm
    bars.x, bars.y = left, 1.1 * cm
    bars.width, bars.height = width - left - 0.4 * cm, height - 2.0 * cm
    bars.data = [chart.counts]
    bars.categoryAxis.categoryNames = chart.labels
    bars.categoryAxis.labels.fontSize = 6.5
    bars.valueAxis.labels.fontSize = 6.5
    bars.valueAxis.labelTextFormat = human
    bars.valueAxis.valueMin = min(0.0, *chart.counts)
    if max(chart.counts) <= 10 and all(float(c).is_integer() for c in chart.counts):
        bars.valueAxis.valueStep = 1  # counts of a few rows: no ticks at 0.5
    if chart.horizontal:
        bars.categoryAxis.labels.dx = -3
        bars.categoryAxis.labels.boxAnchor = "e"
    else:
        crowded = sum(len(label) + 2 for label in chart.labels) > 48
        bars.categoryAxis.labels.boxAnchor = "ne" if crowded else "n"
        bars.categoryAxis.labels.angle = 30 if crowded else 0
        bars.categoryAxis.labels.dy = -2
    bars.bars[0].fillColor = ACCENT
    bars.bars.strokeColor = None
    drawing.add(bars)
    title = short(chart.title, 60)
    drawing.add(String(0, height - 0.45 * cm, title, fontName="Helvetica-Bold", fontSize=9))
    return drawing


def _grid(cells: Sequence[Flowable | str], columns: int = 2) -> Table:
    rows = [list(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    rows[-1] += [""] * (columns - len(rows[-1]))
    table = Table(rows, colWidths=[CHART_WIDTH + 0.3 * cm] * columns)
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _striped(rows: list[list[Any]], numeric_from: int) -> Table:
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
                ("LINEBELOW", (0, 0), (-1, 0), 0.75, ACCENT),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), STRIPES),
                ("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"),
            ]
        )
    )
    return table


def overview(summaries: list[ColumnSummary]) -> Table:
    head = ["column", "kind", "count", "missing", "distinct", "mean", "stdev", "min", "median"]
    body = [
        [short(s.name, 22), s.kind, f"{s.count:,}", f"{s.missing:,}", f"{s.distinct:,}"]
        + [human(v) for v in (s.mean, s.stdev, s.min, s.median, s.max)]
        for s in summaries
    ]
    return _striped([[*head, "max"], *body], 2)


def by_category(found: Breakdown) -> list[Flowable]:
    head = [short(found.category, 20), "rows"]
    for name in found.measures:
        head += [f"{short(name, 14)} total", "mean"]
    body = []
    for group in found.groups:
        cells = [short(group.label, 20), f"{group.rows:,}"]
        for total, mean in zip(group.sums, group.means, strict=True):
            if mean is None:  # no finite value of this measure in the group
                cells += ["", ""]
            else:
                cells += [human(total) if total is not None else "too large", human(mean)]
        body.append(cells)
    title = f"{', '.join(found.measures)} by {found.category}"
    flowables: list[Flowable] = [
        Paragraph(escape(title), STYLES["Heading2"]),
        _striped([head, *body], 1),
    ]
    chart = breakdown_chart(found)
    if chart is not None:
        flowables += [Spacer(1, 0.3 * cm), draw(chart, 16 * cm, max(5 * cm, 0.55 * cm * len(body)))]
    return flowables


def _skipped(summaries: list[ColumnSummary]) -> list[Flowable]:
    lines = [f"{escape(s.name)}: {', '.join(s.notes)}" for s in summaries if s.notes]
    if not lines:
        return []
    return [
        Paragraph("Left out of the figures", STYLES["Heading3"]),
        Paragraph("<br/>".join(lines), STYLES["Normal"]),
    ]


def _lead(rows: int, summaries: list[ColumnSummary]) -> str:
    kinds = {kind: sum(s.kind == kind for s in summaries) for kind in ("number", "text", "empty")}
    parts = [f"{kinds['number']:,} numeric", f"{kinds['text']:,} text"]
    if kinds["empty"]:
        parts.append(f"{kinds['empty']:,} empty")
    return f"{rows:,} rows, {len(summaries):,} columns: {', '.join(parts)}."


def pdf(
    filename: str,
    rows: int,
    summaries: list[ColumnSummary],
    found: Breakdown | None = None,
    on_chart: Callable[[int, int], None] | None = None,
) -> bytes:
    """Render the report for an upload called `filename` with `rows` rows of data."""
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Report: {filename}",
        author="Pillars",
        leftMargin=1.8 * cm,
        rightMargin=1.8 * cm,
    )
    story: list[Flowable] = [
        Paragraph(f"Report: {escape(filename)}", STYLES["Title"]),
        Paragraph(_lead(rows, summaries), STYLES["Normal"]),
        Spacer(1, 0.4 * cm),
        overview(summaries),
        *_skipped(summaries),
    ]
    if found is not None:
        story += by_category(found)
    charts: list[Flowable | str] = []
    for done, summary in enumerate(summaries, 1):
        chart = column_chart(summary)
        if chart is not None:
            charts.append(draw(chart))
        if on_chart is not None:
            on_chart(done, len(summaries))
    if charts:
        story += [Paragraph("Each column", STYLES["Heading2"]), _grid(charts)]
    doc.build(story)
    return out.getvalue()
