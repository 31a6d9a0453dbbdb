"""The queue's figures in Prometheus' text format, read from the database at scrape time.

Every figure comes from the tables, not from process memory, so any number
of gunicorn processes answer the same, and counters survive restarts.
Finished-job counters add the tallies of deleted rows to the rows present,
so pruning never makes them go down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from app.db import without_jit
from app.jobs import holds
from app.jobs.stats import jobs_tuples, oldest_transaction_age, orphaned_names, paused_queues
from app.models import FINISHED_SQL, FINISHED_STATES

#: The window of `pillars_jobs_failed_recent` (and of the duration quantiles).
RECENT = "5 minutes"


@dataclass(frozen=True)
class MetricsSnapshot:
    """What /metrics exposes, read in one go so every gunicorn process says the same."""

    #: (state, queue) -> rows in that state now
    jobs: dict[tuple[str, str], int]
    #: (state, queue) -> finished jobs ever: rows present plus tallied deletions
    finished_total: dict[tuple[str, str], int]
    oldest_due: dict[str, float]
    #: queue -> (p50, p90, p99) seconds of jobs finished in the last 5 minutes
    durations: dict[str, tuple[float, float, float]]
    alive: dict[str, int]
    dead_tuples: int
    paused: list[str] = field(default_factory=list)
    #: queued job names no live worker knows -> jobs waiting (counted up to 1,001)
    orphaned: dict[str, int] = field(default_factory=dict)
    #: seconds the oldest open transaction on the server has been open (0: none)
    oldest_transaction: float = 0.0
    #: job name -> jobs that ended failed in the last RECENT (0 for names workers know)
    failed_recent: dict[str, int] = field(default_factory=dict)
    #: schedule -> newest occurrence cron dealt with, as a Unix time
    cron_last_run: dict[str, float] = field(default_factory=dict)
    #: queue -> (waiting for their key, due but held by the queue's limits)
    held_back: dict[str, tuple[int, int]] = field(default_factory=dict)


def metrics_snapshot(conn: Connection, *, alive_within: float) -> MetricsSnapshot:
    """Read the figures behind /metrics; a process is alive if it beat within `alive_within` s."""
    without_jit(conn)
    jobs = {
        (s, q): n
        for s, q, n in conn.execute(
            text("SELECT state, queue, count(*) FROM jobs GROUP BY state, queue")
        )
    }
    finished = {key: n for key, n in jobs.items() if key[0] in FINISHED_STATES}
    for queue, state, count in conn.execute(text("SELECT queue, state, count FROM job_tallies")):
        finished[(state, queue)] = finished.get((state, queue), 0) + count
    paused = paused_queues(conn)
    # Every queue anyone knows of has a series, 0 when nothing is due: an alert on
    # it then never goes quiet because the series vanished.
    oldest = dict.fromkeys({q for _, q in jobs} | set(paused), 0.0)
    for q, age in conn.execute(
        text("""
        SELECT queue, extract(epoch FROM now() - min(run_at)) FROM jobs
        WHERE state = 'queued' AND run_at <= now() GROUP BY queue
    """)
    ):
        oldest[q] = float(age)
    durations: dict[str, tuple[float, float, float]] = {}
    for queue, quantiles in conn.execute(
        text(f"""
        -- ix_jobs_finished: the last five minutes only.
        SELECT queue, percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM finished_at - started_at))
        FROM jobs
        WHERE {FINISHED_SQL}
          AND finished_at > now() - interval '5 minutes' AND started_at IS NOT NULL
        GROUP BY queue
    """)
    ):
        durations[queue] = (float(quantiles[0]), float(quantiles[1]), float(quantiles[2]))
    alive = dict.fromkeys(("worker", "cron"), 0)
    for kind, count in conn.execute(
        text(
            "SELECT kind, count(*) FROM workers"
            " WHERE heartbeat_at > now() - make_interval(secs => :s) GROUP BY kind"
        ),
        {"s": alive_within},
    ):
        alive[kind] = count
    dead, _ = jobs_tuples(conn)
    return MetricsSnapshot(
        jobs,
        finished,
        oldest,
        durations,
        alive,
        dead,
        paused=paused,
        orphaned=orphaned_names(conn),
        oldest_transaction=oldest_transaction_age(conn) or 0.0,
        failed_recent=_failed_recent(conn),
        cron_last_run=_cron_last_run(conn),
        held_back=holds.held_back(conn),
    )


def _failed_recent(conn: Connection) -> dict[str, int]:
    """Failed jobs per name over the last RECENT, and 0 for every name a worker knows."""
    known = conn.execute(
        text("SELECT DISTINCT unnest(job_names) FROM workers WHERE kind = 'worker'")
    ).scalars()
    failed = dict.fromkeys(known, 0)
    for name, count in conn.execute(
        text(f"""
        -- ix_jobs_finished: the last few minutes only.
        SELECT name, count(*) FROM jobs
        WHERE state = 'failed' AND finished_at > now() - interval '{RECENT}'
        GROUP BY name
    """)
    ):
        failed[name] = count
    return failed


def _cron_last_run(conn: Connection) -> dict[str, float]:
    rows = conn.execute(
        text("""
        SELECT name, extract(epoch FROM last_run_at) FROM cron_state
        WHERE removed_at IS NULL ORDER BY name
    """)
    )
    return {name: float(at) for name, at in rows}


_HELP = {
    "pillars_jobs": ("gauge", "Jobs in the table by state and queue."),
    "pillars_jobs_finished_total": ("counter", "Jobs that ended, by final state and queue."),
    "pillars_queue_oldest_due_seconds": ("gauge", "Age of the oldest job due to run."),
    "pillars_job_duration_seconds": (
        "gauge",
        "Run time of jobs finished in the last 5 minutes, by quantile.",
    ),
    "pillars_processes_alive": ("gauge", "Worker and cron processes with a recent heartbeat."),
    "pillars_jobs_dead_tuples": ("gauge", "Dead row versions in the jobs table awaiting vacuum."),
    "pillars_queue_paused": ("gauge", "1 while a queue is paused (no worker claims from it)."),
    "pillars_jobs_orphaned": (
        "gauge",
        "Queued jobs whose name no live worker knows, by name (counted up to 1001).",
    ),
    "pillars_oldest_transaction_seconds": (
        "gauge",
        "Age of the oldest open transaction on the server; it holds back vacuum.",
    ),
    "pillars_jobs_failed_recent": (
        "gauge",
        f"Jobs that ended failed in the last {RECENT}, by job name.",
    ),
    "pillars_jobs_held_back": (
        "gauge",
        "Jobs held back by flow control, per queue: by='key' wait for their concurrency or"
        " ordering key, by='queue_limit' are due but over their queue's limits.",
    ),
    "pillars_cron_last_run_timestamp_seconds": (
        "gauge",
        "Newest occurrence cron enqueued (or skipped by policy or pause), by schedule.",
    ),
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(snapshot: MetricsSnapshot) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for (state, queue), count in sorted(snapshot.jobs.items()):
        samples["pillars_jobs"].append(
            f'{{state="{_label(state)}",queue="{_label(queue)}"}} {count}'
        )
    for (state, queue), count in sorted(snapshot.finished_total.items()):
        samples["pillars_jobs_finished_total"].append(
            f'{{state="{_label(state)}",queue="{_label(queue)}"}} {count}'
        )
    for queue, age in sorted(snapshot.oldest_due.items()):
        samples["pillars_queue_oldest_due_seconds"].append(f'{{queue="{_label(queue)}"}} {age:.3f}')
    for queue, quantiles in sorted(snapshot.durations.items()):
        for quantile, value in zip(("0.5", "0.9", "0.99"), quantiles, strict=True):
            samples["pillars_job_duration_seconds"].append(
                f'{{queue="{_label(queue)}",quantile="{quantile}"}} {value:.6f}'
            )
    for kind, count in sorted(snapshot.alive.items()):
        samples["pillars_processes_alive"].append(f'{{kind="{kind}"}} {count}')
    samples["pillars_jobs_dead_tuples"].append(f" {snapshot.dead_tuples}")  # no labels
    for queue in sorted(set(snapshot.oldest_due) | set(snapshot.paused)):
        paused = int(queue in snapshot.paused)
        samples["pillars_queue_paused"].append(f'{{queue="{_label(queue)}"}} {paused}')
    for name, count in sorted(snapshot.orphaned.items()):
        samples["pillars_jobs_orphaned"].append(f'{{name="{_label(name)}"}} {count}')
    samples["pillars_oldest_transaction_seconds"].append(f" {snapshot.oldest_transaction:.3f}")
    for name, count in sorted(snapshot.failed_recent.items()):
        samples["pillars_jobs_failed_recent"].append(f'{{name="{_label(name)}"}} {count}')
    for queue, (keyed, limited) in sorted(snapshot.held_back.items()):
        for by, count in (("key", keyed), ("queue_limit", limited)):
            samples["pillars_jobs_held_back"].append(
                f'{{queue="{_label(queue)}",by="{by}"}} {count}'
            )
    for schedule, at in sorted(snapshot.cron_last_run.items()):
        samples["pillars_cron_last_run_timestamp_seconds"].append(
            f'{{schedule="{_label(schedule)}"}} {at:.3f}'
        )
    lines = []
    for name, (kind, help_text) in _HELP.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n"
