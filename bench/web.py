"""Web latency while the worker is saturated: `.venv/bin/python -m bench.web`.

wrk posts uploads to POST /exports (validate a small CSV, write the export
row and its job in one transaction, answer 303) on gunicorn at 127.0.0.1,
first with the worker idle, then busy with slow I/O-bound jobs, then busy
with CPU-bound report jobs, and once more with those workers at `nice 19`.
The measured uploads queue their reports on `reports`, which no benchmark
worker takes, so only the background load runs. Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.config import Settings
from app.db import make_engine
from bench import web_setup, web_wrk
from bench.web_setup import ROOT

Scenario = tuple[str, Callable[[Engine], None], int, int, bool]


def queue_report_jobs(engine: Engine) -> None:
    web_setup.queue_reports(engine, count=150, rows=40_000)


def queue_wait_jobs(engine: Engine) -> None:
    web_setup.queue_waits(engine, count=6_000, seconds=0.25)


#: (label, background load, worker processes, threads each, at nice 19)
SCENARIOS: list[Scenario] = [
    ("worker idle", lambda engine: None, 1, 10, False),
    ("worker busy: I/O-bound jobs", queue_wait_jobs, 1, 20, False),
    ("worker busy: CPU-bound reports", queue_report_jobs, 2, 2, False),
    ("  same, worker at nice 19", queue_report_jobs, 2, 2, True),
]


def start_workers(env: dict[str, str], count: int, threads: int, nice: bool) -> list[Any]:
    prefix = ["nice", "-n", "19"] if nice else []
    command = [*prefix, sys.executable, "worker.py", "--queues", "bench"]
    return [
        subprocess.Popen(
            [*command, "--concurrency", str(threads)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def measure(
    engine: Engine,
    env: dict[str, str],
    base: str,
    script: Path,
    args: argparse.Namespace,
    scenario: Scenario,
) -> str:
    label, load, processes, threads, nice = scenario
    web_setup.clear_background(engine)
    load(engine)
    workers = start_workers(env, processes, threads, nice)
    try:
        if label != "worker idle":
            web_setup.wait_until_busy(engine)
        before = web_setup.finished_background(engine)
        figures = web_wrk.run(f"{base}/exports", script, args.seconds, args.connections)
        done = web_setup.finished_background(engine) - before
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
    return (
        f"{label:<34} {figures.p50_ms:>8.1f} {figures.p99_ms:>8.1f} "
        f"{figures.requests_per_s:>8.0f} {figures.errors:>6} {done:>10}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per scenario")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.web needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="pillars-webbench-") as tmp:
        url, server = web_setup.database(Path(tmp))
        env = web_setup.environment(url, Path(tmp))
        os.environ.update(env)
        engine = make_engine(Settings.from_env(), pool_size=2)
        with web_setup.gunicorn(env, Path(tmp)) as base:
            script = web_setup.upload_script(base, Path(tmp))
            print(f"gunicorn at {base}; wrk {args.connections} connections, {args.seconds} s each")
            print(
                f"{'scenario':<34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>6} "
                f"{'jobs done':>10}"
            )
            web_wrk.run(f"{base}/exports", script, 2, args.connections)  # warm the pools up
            for scenario in SCENARIOS:
                print(measure(engine, env, base, script, args, scenario), flush=True)
            with engine.connect() as conn:
                made = conn.execute(text("SELECT count(*) FROM exports")).scalar_one()
            load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
            print(f"uploads accepted during the run: {made}; load average now: {load}")
        engine.dispose()
        del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
