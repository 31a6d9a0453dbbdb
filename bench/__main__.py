"""Queue benchmark: `python3 dev.py bench [--rounds N] [--quick]`.

Every figure is printed beside a raw psycopg baseline (`bench/raw.py`)
measured in the same run on the same server, because absolute numbers on a
shared machine drift from minute to minute while ratios hold. With several
rounds, the median of each figure is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from app.config import Settings, normalize_database_url
from app.db import make_engine
from app.jobs import load_job_modules
from bench import pillars, raw

ROOT = Path(__file__).resolve().parent.parent


def databases(base_url: str | None, tmp: Path) -> tuple[str, str, Any]:
    """Return (raw dsn, pillars URL, server handle) for two fresh databases."""
    import psycopg

    server = None
    if base_url is None:
        from dev import embedded_server

        server = embedded_server(tmp / "pg", cleanup="delete")
        base_url = server.get_uri()
    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in ("bench_raw", "bench_pillars"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
    from sqlalchemy.engine import make_url

    def at(name: str) -> str:
        return make_url(admin).set(database=name).render_as_string(hide_password=False)

    return at("bench_raw"), normalize_database_url(at("bench_pillars")), server


def main() -> int:
    parser = argparse.ArgumentParser(description="Pillars queue benchmark")
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only",
        default="enqueue,drain,latency",
        help="comma-separated parts to run: enqueue, drain, latency",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="server to use (default: an embedded one); two databases are made",
    )
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    with tempfile.TemporaryDirectory(prefix="pillars-bench-") as tmp:
        raw_dsn, url, server = databases(args.database_url, Path(tmp))
        os.environ["DATABASE_URL"] = url
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["configure_logger"] = False
        command.upgrade(config, "head")
        load_job_modules(["bench.jobs"])
        engine = make_engine(Settings.from_env(), pool_size=2)
        raw.setup(raw_dsn)
        n_single, n_bulk, n_drain = int(3000 * scale), int(100_000 * scale), int(50_000 * scale)
        seconds = 20 * scale
        parts = set(args.only.split(","))
        rows: list[tuple[str, str, Callable[[], float], Callable[[], float], str]] = [
            (
                "enqueue",
                "enqueue, 1 job per transaction",
                lambda: pillars.enqueue_single(engine, n_single),
                lambda: raw.enqueue_single(raw_dsn, n_single),
                "jobs/s",
            ),
            (
                "enqueue",
                "enqueue_many, 1,000 per statement",
                lambda: pillars.enqueue_bulk(engine, n_bulk),
                lambda: raw.enqueue_bulk(raw_dsn, n_bulk),
                "jobs/s",
            ),
            (
                "drain",
                "drain no-op, 1 process",
                lambda: pillars.drain(engine, url, n_drain, 1, 50),
                lambda: raw.drain(raw_dsn, n_drain, 1),
                "jobs/s",
            ),
            (
                "drain",
                "drain no-op, 2 processes",
                lambda: pillars.drain(engine, url, n_drain, 2, 50),
                lambda: raw.drain(raw_dsn, n_drain, 2),
                "jobs/s",
            ),
        ]
        sync = Settings.from_env().worker_synchronous_commit
        print(
            f"worker synchronous_commit: {'on' if sync else 'off'}; rounds: {args.rounds}"
            f"{' (quick)' if args.quick else ''}"
        )
        print(f"{'measurement':<40} {'pillars':>12} {'raw':>12} {'ratio':>7}")
        for part, label, ours, theirs, unit in rows:
            if part not in parts:
                continue
            # Interleaved, so a noisy minute hurts both sides alike.
            pairs = [(ours(), theirs()) for _ in range(args.rounds)]
            a = statistics.median(p[0] for p in pairs)
            b = statistics.median(p[1] for p in pairs)
            print(f"{label:<40} {a:>12,.0f} {b:>12,.0f} {a / b:>7.2f}  {unit}", flush=True)
        if "latency" in parts:
            runs = [
                (
                    pillars.pickup_latency(engine, url, 100, seconds),
                    raw.pickup_latency(raw_dsn, 100, seconds),
                )
                for _ in range(args.rounds)
            ]
            for index, label in enumerate(("p50", "p99")):
                a = statistics.median(r[0][index] for r in runs)
                b = statistics.median(r[1][index] for r in runs)
                print(
                    f"{'pickup latency ' + label + ' at 100 jobs/s':<40} {a:>12.1f} {b:>12.1f} "
                    f"{a / b:>7.2f}  ms (lower is better)",
                    flush=True,
                )
        engine.dispose()
        if server is not None:
            server.cleanup()  # before its folder goes
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
