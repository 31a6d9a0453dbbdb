"""The queue benchmark's table: which figures stand side by side, and how they print.

A round yields a flat dict of figures by key; a `Row` names the raw,
pgqueuer and Pillars figures it compares. Ratios are Pillars over the
others, computed per round (they hold while absolute numbers drift on a
shared machine); the summary gives the median of each figure and of each
ratio over the rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Figures = dict[str, float]


@dataclass(frozen=True)
class Row:
    label: str
    unit: str
    raw: str | None
    pgq: str | None
    pillars: str

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key in (self.raw, self.pgq, self.pillars) if key is not None)


def _row(
    label: str,
    unit: str,
    key: str,
    raw: str | None = "raw",
    pgq: str | None = "pgq",
    pillars: str = "pillars",
) -> Row:
    """A row whose figures are `key.raw`, `key.pgq` and `key.pillars` (or the names given)."""
    return Row(
        label,
        unit,
        None if raw is None else f"{key}.{raw}",
        None if pgq is None else f"{key}.{pgq}",
        f"{key}.{pillars}",
    )


def rows(sync_default: bool) -> list[Row]:
    """Every comparison, in print order. `sync_default` is WORKER_SYNCHRONOUS_COMMIT's default."""
    default, other = ("on", "off") if sync_default else ("off", "on")
    alt = "pillars.other"
    ms = "ms (lower is better)"
    return [
        _row("enqueue, 1 per transaction", "jobs/s", "enqueue"),
        _row("enqueue_many, 1,000 per call (raw: executemany)", "jobs/s", "many"),
        _row("enqueue_many, 10,000 per call (raw: COPY, 10,000 per COPY)", "jobs/s", "many",
             "copy", None, pillars="pillars_copy"),
        _row(f"drain, defaults, sync {default} (raw: 1 job/transaction)", "jobs/s", "drain.default",
             "raw1"),
        _row(f"drain, defaults, sync {default} (raw: 50 per claim)", "jobs/s", "drain.default",
             "raw50"),
        _row(f"drain, defaults, sync {other} (raw: 50 per claim)", "jobs/s", "drain.default",
             "raw50", pillars=alt),
        _row(f"drain, best 2 x 50, sync {default} (raw: 2 x 50/claim)", "jobs/s", "drain.best"),
        _row(f"drain, best 2 x 50, sync {other} (raw: 2 x 50/claim)", "jobs/s", "drain.best",
             pillars=alt),
        _row("pickup p50 at 100 jobs/s, worker idle", ms, "pickup.idle.p50"),
        _row("pickup p99 at 100 jobs/s, worker idle", ms, "pickup.idle.p99"),
        _row("pickup p50 at 100 jobs/s, worker draining", ms, "pickup.busy.p50"),
        _row("pickup p99 at 100 jobs/s, worker draining", ms, "pickup.busy.p99"),
        _row("churn: last 10 % / first 10 % drain rate (best)", "x", "churn"),
    ]  # fmt: skip


COST_ROWS = (
    ("raw BEGIN; INSERT; COMMIT", "cost.raw"),
    ("raw BEGIN; SAVEPOINT; INSERT; RELEASE; COMMIT", "cost.savepoint"),
    ("raw autocommit INSERT (one round trip)", "cost.autocommit"),
    ("raw BEGIN; INSERT; COMMIT into pillars' jobs table", "cost.jobs_table"),
    ("pillars payload check (encode_payload, no database)", "cost.check"),
    ("pillars enqueue + commit", "cost.pillars"),
)

_HEAD = f"{'measurement':<58} {'unit':<7} {'raw':>9} {'pgqueuer':>9} {'pillars':>9} "
_HEAD += f"{'P/raw':>6} {'P/pgq':>6}"


def _figure(value: float | None) -> str:
    if value is None:
        return f"{'—':>9}"
    return f"{value:>9,.0f}" if value >= 100 else f"{value:>9.2f}"


def _ratio(value: float | None) -> str:
    return f"{'—':>6}" if value is None else f"{value:>6.2f}"


def ratio(figures: Figures, numerator: str, denominator: str | None) -> float | None:
    if denominator is None or numerator not in figures or denominator not in figures:
        return None
    return figures[numerator] / figures[denominator] if figures[denominator] else None


def render(table: Sequence[Row], figures: Figures, ratios: dict[str, float] | None = None) -> str:
    """The table for one round (ratios from `figures`) or for the medians (`ratios` given)."""
    lines = [_HEAD]
    for row in table:
        if not any(key in figures for key in row.keys):
            continue
        to_raw = ratios.get(f"{row.label}/raw") if ratios else ratio(figures, row.pillars, row.raw)
        to_pgq = ratios.get(f"{row.label}/pgq") if ratios else ratio(figures, row.pillars, row.pgq)
        unit = row.unit if row.unit != "ms (lower is better)" else "ms"
        lines.append(
            f"{row.label:<58} {unit:<7} {_figure(figures.get(row.raw or ''))} "
            f"{_figure(figures.get(row.pgq or ''))} {_figure(figures.get(row.pillars))} "
            f"{_ratio(to_raw)} {_ratio(to_pgq)}"
        )
    return "\n".join(lines) if len(lines) > 1 else ""


def medians(table: Sequence[Row], rounds: Sequence[Figures]) -> tuple[Figures, dict[str, float]]:
    """The median of every figure, and of every per-round ratio, over the rounds."""
    keys = {key for figures in rounds for key in figures}
    middle = {key: statistics.median(f[key] for f in rounds if key in f) for key in keys}
    ratios: dict[str, float] = {}
    for row in table:
        for name, other in (("raw", row.raw), ("pgq", row.pgq)):
            per_round = [r for f in rounds if (r := ratio(f, row.pillars, other)) is not None]
            if per_round:
                ratios[f"{row.label}/{name}"] = statistics.median(per_round)
    return middle, ratios


def render_cost(figures: Figures) -> str:
    """Microseconds per job for each part of an enqueue, and the two prices asked for."""
    if "cost.raw" not in figures:
        return ""
    base = figures["cost.raw"]
    lines = [f"{'enqueue cost, one job per transaction':<58} {'us/job':>9} {'x raw B/I/C':>12}"]
    for label, key in COST_ROWS:
        lines.append(f"{label:<58} {figures[key]:>9.1f} {figures[key] / base:>12.2f}")
    lines.append(
        f"a SAVEPOINT around the INSERT adds {figures['cost.savepoint'] - base:.1f} us per "
        f"enqueue ({(figures['cost.savepoint'] / base - 1) * 100:+.0f} %); the payload check is "
        f"{figures['cost.check'] / figures['cost.pillars'] * 100:.1f} % of pillars' enqueue; "
        f"pillars' enqueue is {figures['cost.jobs_table'] / figures['cost.pillars']:.2f}x "
        "as fast as the raw loop into its own table"
    )
    return "\n".join(lines)


FLOW_ROWS = (
    ("no keys, no limits", "flow.plain"),
    ("100 keys of limit 1", "flow.keys100"),
    ("10,000 keys of limit 1", "flow.keys10000"),
    ("one queue limited to 50 running", "flow.queue_limit"),
)


def render_flow(figures: Figures) -> str:
    """Drain rates (2 x 50) with flow control beside the same drain without."""
    if "flow.plain" not in figures:
        return ""
    base = figures["flow.plain"]
    lines = [f"{'flow control, drain 2 x 50':<58} {'jobs/s':>9} {'x plain':>12}"]
    for label, key in FLOW_ROWS:
        lines.append(f"{label:<58} {figures[key]:>9,.0f} {figures[key] / base:>12.2f}")
    return "\n".join(lines)
