"""The PDF report: a summary table per column and one chart, drawn with ReportLab.

ReportLab draws charts itself (`reportlab.graphics`), so the worker needs no
plotting library. Only the `reports.build` job imports this module.
"""

from __future__ import annotations

import io

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from app.reports.stats import ColumnSummary

ACCENT = colors.HexColor("#2f5d8a")
BINS = 10


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def histogram(values: list[float], bins: int = BINS) -> tuple[list[str], list[int]]:
    """Count `values` into equal-width bins; returns (labels, counts)."""
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    labels = [_fmt(low + width * i) for i in range(bins)]
    return labels, counts


def chart_data(summaries: list[ColumnSummary]) -> tuple[str, list[str], list[int]]:
    """Pick what to draw: the first numeric column's histogram, else the first column's values."""
    for summary in summaries:
        if summary.kind == "number" and summary.values:
            labels, counts = histogram(summary.values)
            return f"Distribution of {summary.name}", labels, counts
    first = summaries[0]
    return (
        f"Most common values of {first.name}",
        [value[:12] for value, _ in first.top],
        [count for _, count in first.top],
    )


def chart(summaries: list[ColumnSummary], width: float = 16 * cm) -> Drawing:
    title, labels, counts = chart_data(summaries)
    drawing = Drawing(width, 7 * cm)
    bars = VerticalBarChart()
    bars.x, bars.y = int(1.2 * cm), int(1.2 * cm)
    bars.width, bars.height = int(width - 2 * cm), int(4.8 * cm)
    bars.data = [counts]
    bars.categoryAxis.categoryNames = labels
    bars.categoryAxis.labels.fontSize = 7
    bars.categoryAxis.labels.angle = 30 if len(labels) > 6 else 0
    bars.categoryAxis.labels.dy = -8
    bars.valueAxis.valueMin = 0
    bars.bars[0].fillColor = ACCENT
    drawing.add(bars)
    drawing.add(String(1.2 * cm, 6.5 * cm, title, fontName="Helvetica-Bold", fontSize=11))
    return drawing


def _table(summaries: list[ColumnSummary]) -> Table:
    head = ["column", "kind", "count", "missing", "distinct", "mean", "stdev", "min", "max"]
    body = [
        [s.name[:24], s.kind, s.count, s.missing, s.distinct]
        + [_fmt(v) for v in (s.mean, s.stdev, s.min, s.max)]
        for s in summaries
    ]
    table = Table([head, *body], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                ("LINEBELOW", (0, 0), (-1, 0), 0.75, ACCENT),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f1f4f8")]),
                ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    return table


def pdf(filename: str, rows: int, summaries: list[ColumnSummary]) -> bytes:
    """Render the report for an upload called `filename` with `rows` rows of data."""
    out = io.BytesIO()
    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(out, pagesize=A4, title=f"Report: {filename}", author="Pillars")
    doc.build(
        [
            Paragraph(f"Report: {_escape(filename)}", styles["Title"]),
            Paragraph(f"{rows} rows, {len(summaries)} columns.", styles["Normal"]),
            Spacer(1, 0.5 * cm),
            chart(summaries),
            Spacer(1, 0.5 * cm),
            _table(summaries),
        ]
    )
    return out.getvalue()


def _escape(text: str) -> str:
    """Paragraph text is a small markup language: keep a filename from being read as tags."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
