"""Job duration and queue-wait histograms for /metrics, per job name and queue.

Read from the table at scrape time, like every figure of `app.jobs.metrics`,
so any number of gunicorn processes answer the same. The window is the jobs
finished in the last five minutes, at most `CAP` of them, found through
`ix_jobs_finished`: the cost is bounded however big the table grows. A window
is not a counter: the buckets are gauges, for `histogram_quantile()`
without `rate()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.models import FINISHED_SQL

#: Bucket bounds in seconds, for job durations and queue waits alike.
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: The newest finished jobs read per scrape, at most.
CAP = 20_000

# Both times are bucketed in the database: one row per (name, queue, bucket).
WINDOW = text(f"""
WITH recent AS (
    -- ix_jobs_finished: a backward index scan of the last five minutes, cut at :cap.
    SELECT name, queue,
           extract(epoch FROM finished_at - started_at) AS ran,
           extract(epoch FROM started_at - run_at) AS waited
    FROM jobs
    WHERE {FINISHED_SQL}
      AND finished_at > now() - interval '5 minutes' AND started_at IS NOT NULL
    ORDER BY finished_at DESC
    LIMIT :cap
)
SELECT name, queue, 'duration' AS kind,
       width_bucket(CAST(ran AS double precision), CAST(:bounds AS double precision[])), count(*)
FROM recent GROUP BY 1, 2, 4
UNION ALL
SELECT name, queue, 'wait',
       width_bucket(CAST(greatest(waited, 0) AS double precision),
                    CAST(:bounds AS double precision[])), count(*)
FROM recent GROUP BY 1, 2, 4
""")


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per bound (the last is +Inf) for one job name and queue."""

    kind: str
    name: str
    queue: str
    counts: tuple[int, ...]


def read(conn: Connection) -> list[Histogram]:
    """The window's histograms, sorted by kind, name and queue."""
    per: dict[tuple[str, str, str], list[int]] = {}
    params = {"cap": CAP, "bounds": list(BOUNDS)}
    for name, queue, kind, bucket, count in conn.execute(WINDOW, params):
        # width_bucket: i means bounds[i-1] <= value < bounds[i]; len(BOUNDS) is past the last.
        per.setdefault((kind, name, queue), [0] * (len(BOUNDS) + 1))[bucket] += count
    histograms = []
    for (kind, name, queue), counts in sorted(per.items()):
        total, cumulative = 0, []
        for count in counts:
            total += count
            cumulative.append(total)
        histograms.append(Histogram(kind, name, queue, tuple(cumulative)))
    return histograms


_SERIES = {
    "duration": "pillars_job_duration_recent_seconds_bucket",
    "wait": "pillars_job_queue_wait_recent_seconds_bucket",
}
_HELP = {
    "duration": "Jobs finished in the last 5 minutes that ran less than le seconds",
    "wait": "Jobs finished in the last 5 minutes that waited less than le seconds to start",
}


def render(histograms: list[Histogram]) -> str:
    """The histograms in Prometheus' text format: gauges named `..._bucket` with `le`."""
    lines: list[str] = []
    for kind, series in _SERIES.items():
        lines += [
            f"# HELP {series} {_HELP[kind]} (a window: histogram_quantile() without rate())",
            f"# TYPE {series} gauge",
        ]
        for h in (h for h in histograms if h.kind == kind):
            labels = f'name="{_label(h.name)}",queue="{_label(h.queue)}"'
            for bound, count in zip((*map(str, BOUNDS), "+Inf"), h.counts, strict=True):
                lines.append(f'{series}{{{labels},le="{bound}"}} {count}')
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
