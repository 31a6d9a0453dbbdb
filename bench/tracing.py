"""What tracing costs the queue: enqueue and drain with tracing off, then on.

`.venv/bin/python -m bench.tracing [--jobs N] [--database-url URL]`. Off is
the default (no OTEL_* variables: no SDK loaded); on exports every span,
in this process and the workers, as JSON lines to /dev/null through the
SDK (PILLARS_TRACE_FILE), so the figure is the SDK's and the spans' cost
without a collector's network. Run off first: the SDK, once on, stays on.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app import tracing
from bench import pillars, server


@dataclass(frozen=True)
class Traced(pillars.Setup):
    """Workers whose spans go to PILLARS_TRACE_FILE."""

    def env(self, target: pillars.Target) -> dict[str, str]:
        return {**super().env(target), "PILLARS_TRACE_FILE": "/dev/null"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3_000, help="jobs enqueued one by one")
    parser.add_argument("--drain", type=int, default=20_000, help="jobs drained")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="a server to use (default: an embedded one)")
    args = parser.parse_args()
    with server.databases(args.database_url) as dbs, tempfile.TemporaryDirectory() as tmp:
        target = pillars.prepare(dbs.dsn("pillars"), Path(tmp))
        figures: dict[str, list[float]] = {}
        for mode, setup in (("off", pillars.Setup()), ("on", Traced())):
            if mode == "on":
                os.environ["PILLARS_TRACE_FILE"] = "/dev/null"
                assert tracing.configure("bench")
            for _ in range(args.rounds):
                figures.setdefault(f"enqueue {mode}", []).append(
                    pillars.enqueue_single(target, args.jobs)
                )
                drained = pillars.drain(target, args.drain, setup)
                figures.setdefault(f"drain {mode}", []).append(drained.rate)
        target.engine.dispose()
    print(f"server: {dbs.description}; medians of {args.rounds} rounds, jobs/s")
    for name, values in figures.items():
        print(f"{name:12} {sorted(values)[len(values) // 2]:>10,.0f}   {values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
