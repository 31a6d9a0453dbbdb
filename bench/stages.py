"""Where a pickup's milliseconds go while a worker drains: `.venv/bin/python -m bench.stages`.

The benchmark's pickup part gives one figure per probe, enqueue to handler.
This splits it. A default worker runs in this process over a backlog of
no-op jobs, its steps timed where they happen: the NOTIFY reaching the
worker (`Worker._notify`), the claim that took the probe (`claims.cycle`,
by the path that ran it: the express thread, the loop claiming alone, or a
whole cycle saving outcomes too) and the handler's start (`bench.pickup`'s
result). A producer process enqueues probes at `--rate` a second, as the
pickup part does, and times its own `enqueue` and `session.commit()`.
Every stage is printed in milliseconds after the producer's clock; the
worker's log lines go to a file, as the benchmark's workers' do.

Without `--database-url` the run has an embedded server of its own; with
it, a database of its own on that server (`bench.server`), dropped at the end.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, claims, enqueue, enqueue_many
from app.jobs.execution import Outcome
from app.jobs.worker import Worker
from bench import pillars, server

#: How a probe was claimed, by the thread and the statement that claimed it.
EXPRESS, ALONE, CYCLE = "express claim", "loop, claim alone", "loop, whole cycle"


def produce(dsn: str, log_dir: Path, probes: int, rate: float, go: Event, out: Queue[Any]) -> None:
    """Enqueue `probes` at `rate`/s once `go` is set; put (clock, enqueued, committed) of each."""
    target = pillars.prepare(dsn, log_dir)
    go.wait()
    times = []
    with target.engine.connect() as conn, Session(conn) as session:
        started = time.perf_counter()
        for i in range(probes):
            pause = started + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            clock = time.time()
            enqueue(session, "bench.pickup", {"t": clock}, priority=1)
            enqueued = time.time()
            session.commit()
            times.append((clock, enqueued - clock, time.time() - clock))
    out.put(times)


class Stages:
    """The worker's steps as they happen: `Worker._notify` and `claims.cycle`, wrapped."""

    def __init__(self) -> None:
        self.notified: list[float] = []
        #: (the probe's clock, claim start, claim end, path) for each claimed probe.
        self.claims: list[tuple[float, float, float, str]] = []
        self._notify = Worker._notify
        self._cycle = claims.cycle

    def __enter__(self) -> Stages:
        notify, cycle = self._notify, self._cycle

        def notified(worker: Worker) -> None:
            self.notified.append(time.time())
            notify(worker)

        def timed(
            conn: Connection,
            worker_id: str,
            outcomes: Sequence[Outcome],
            queues: Sequence[str] | None,
            limit: int,
        ) -> claims.Cycle:
            began = time.time()
            done = cycle(conn, worker_id, outcomes, queues, limit)
            ended = time.time()
            express = threading.current_thread().name == "pillars-express"
            path = EXPRESS if express else (CYCLE if outcomes else ALONE)
            for job in done.claimed:
                if job.name == "bench.pickup":
                    self.claims.append((job.payload["t"], began, ended, path))
            return done

        Worker._notify = notified  # type: ignore[method-assign, assignment]
        claims.cycle = timed
        return self

    def __exit__(self, *_: object) -> None:
        Worker._notify = self._notify  # type: ignore[method-assign]
        claims.cycle = self._cycle


def run(dsn: str, log_dir: Path, backlog: int, probes: int, rate: float) -> list[str]:
    """Drain `backlog` with one in-process default worker while `probes` come; the report."""
    target = pillars.prepare(dsn, log_dir)
    pillars.reset(target)
    with Session(target.engine) as session:
        enqueue_many(session, [JobRequest("bench.noop", {"n": n}) for n in range(backlog)])
        session.commit()
    with target.engine.begin() as conn:
        conn.execute(text("ANALYZE jobs"))
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    producer = context.Process(target=produce, args=(dsn, log_dir, probes, rate, go, out))
    producer.start()
    from app import logs
    from app.config import get_settings
    from app.db import make_engine

    settings = get_settings()
    with (
        (log_dir / "worker.log").open("w") as log_file,
        contextlib.redirect_stderr(log_file),
        Stages() as stages,
    ):
        logs.configure("worker")  # a line per attempt, as the benchmark's workers log
        worker = Worker(
            make_engine(settings, pool_size=4, application_name="bench-stages"), settings
        )
        loop = threading.Thread(target=worker.run, daemon=True)
        loop.start()
        time.sleep(2.0)  # started, heap settled, registered
        go.set()
        sent: list[tuple[float, float, float]] = out.get(timeout=60 + probes / rate)
        producer.join()
        with target.engine.connect() as conn:
            deadline = time.time() + 60
            while time.time() < deadline and conn.execute(text(_PROBES_LEFT)).scalar_one():
                conn.commit()
                time.sleep(0.2)
            lasted = bool(conn.execute(text(_QUEUED)).scalar_one())
        worker.stop()
        loop.join(30)
        logs.flush()
    with target.engine.connect() as conn:
        started = {
            clock: clock + seconds for clock, seconds in conn.execute(text(_PROBE_STARTS)).all()
        }
    return report(sent, stages, started, lasted)


_PROBES_LEFT = (
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE name = 'bench.pickup' AND state <> 'succeeded')"
)
_QUEUED = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued')"
_PROBE_STARTS = (
    "SELECT CAST(payload ->> 't' AS double precision), CAST(result AS double precision)"
    " FROM jobs WHERE name = 'bench.pickup' AND state = 'succeeded'"
)


def report(
    sent: list[tuple[float, float, float]],
    stages: Stages,
    started: dict[float, float],
    lasted: bool,
) -> list[str]:
    """Each stage's p50/p90/p99 in ms after the producer's clock, and the handler per path."""
    notified = sorted(stages.notified)
    steps: dict[str, list[float]] = {
        "enqueue returned": [enqueued for _, enqueued, _ in sent],
        "commit returned": [committed for _, _, committed in sent],
        "NOTIFY at the worker": [],
        "claim began": [],
        "claim returned": [],
        "handler started": [],
    }
    paths: dict[str, list[float]] = {}
    for clock, began, ended, path in stages.claims:
        after = bisect.bisect_left(notified, clock)
        if clock not in started or after == len(notified):
            continue
        steps["NOTIFY at the worker"].append(notified[after] - clock)
        steps["claim began"].append(began - clock)
        steps["claim returned"].append(ended - clock)
        steps["handler started"].append(started[clock] - clock)
        paths.setdefault(path, []).append(started[clock] - clock)
    lines = [f"{'ms after the producer clock':<30}{'p50':>8}{'p90':>8}{'p99':>8}"]
    for name, seconds in steps.items():
        lines.append(f"{name:<30}" + "".join(f"{q * 1e3:8.2f}" for q in _quantiles(seconds)))
    lines.append("handler started, by the path that claimed the probe:")
    for path, seconds in sorted(paths.items()):
        p50 = statistics.median(seconds) * 1e3
        lines.append(f"  {path:<28}{p50:8.2f}   ({len(seconds)} probes)")
    if not lasted:
        lines.append("the backlog ran out before the last probe: raise --backlog")
    return lines


def _quantiles(seconds: list[float]) -> tuple[float, float, float]:
    ordered = sorted(seconds) or [float("nan")]
    p50, p90, p99 = (
        ordered[min(len(ordered) - 1, int(len(ordered) * q))] for q in (0.5, 0.9, 0.99)
    )
    return p50, p90, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a server to make a database on (default: embedded)")
    parser.add_argument("--backlog", type=int, default=150_000, help="no-op jobs to drain")
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="probes a second")
    args = parser.parse_args()
    with (
        server.databases(args.database_url) as made,
        tempfile.TemporaryDirectory(prefix="pillars-bench-stages-") as logs,
    ):
        for line in run(made.dsn("pillars"), Path(logs), args.backlog, args.probes, args.rate):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
