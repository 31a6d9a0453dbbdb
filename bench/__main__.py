"""Queue benchmark: `python3 dev.py bench [--rounds N] [--quick] [--only PARTS]`.

Three systems on the same no-op jobs, in one process, against one server,
per round: hand-written psycopg loops (`bench/raw.py`, the ceiling),
pgqueuer (`bench/pgq.py`, the best Python peer) and Pillars
(`bench/pillars.py`, real `worker.py` processes). Absolute numbers on a
shared machine drift from minute to minute while ratios measured side by
side hold, so every round prints each figure with Pillars' ratios to the
others, and the summary gives the medians over the rounds.

A part is a function from the round's context to figures; a new
benchmark (say, of limited claims) is one more entry in `PARTS`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from app.config import Settings
from bench import cost, cycle, handoff, pgq, pillars, raw, server
from bench.measure import Pickup
from bench.table import Figures, medians, render, render_cost, render_flow, rows


@dataclass(frozen=True)
class Sizes:
    single: int = 3_000
    bulk: int = 100_000
    drain: int = 50_000
    churn: int = 200_000
    probe_rate: float = 100.0
    probe_seconds: float = 10.0

    def scaled(self, factor: float) -> Sizes:
        return Sizes(
            max(50, int(self.single * factor)),
            max(1_000, int(self.bulk * factor)),
            max(500, int(self.drain * factor)),
            max(1_000, int(self.churn * factor)),
            self.probe_rate,
            max(1.0, self.probe_seconds * factor),
        )


@dataclass
class Round:
    """What every part of a round works with, and what it has found so far."""

    raw: str
    pgq: pgq.Target
    pillars: pillars.Target
    sizes: Sizes
    figures: Figures
    notes: list[str]


def enqueue(r: Round) -> Figures:
    n, bulk = r.sizes.single, r.sizes.bulk
    return {
        "enqueue.raw": raw.enqueue_single(r.raw, n),
        "enqueue.pgq": pgq.enqueue_single(r.pgq, n),
        "enqueue.pillars": pillars.enqueue_single(r.pillars, n),
        "many.raw": raw.enqueue_executemany(r.raw, bulk),
        "many.copy": raw.enqueue_copy(r.raw, bulk),
        "many.pgq": pgq.enqueue_batches(r.pgq, bulk),
        "many.pillars": pillars.enqueue_batches(r.pillars, bulk),
        "many.pillars_copy": pillars.enqueue_batches(r.pillars, bulk, batch=10_000),
    }


def enqueue_cost(r: Round) -> Figures:
    return cost.measure(r.raw, r.pillars, r.sizes.single)


def cycle_cost(r: Round) -> Figures:
    return cycle.measure(r.pillars, r.sizes.drain * 4)


def drain(r: Round) -> Figures:
    n = r.sizes.drain
    default = pillars.Setup()
    best = pillars.Setup(processes=2, concurrency=50)
    other = not _defaults().worker_synchronous_commit
    return {
        "drain.default.raw1": raw.drain(r.raw, n, 1, batch=1).rate,
        "drain.default.raw50": raw.drain(r.raw, n, 1, batch=50).rate,
        "drain.default.pgq": pgq.drain(r.pgq, n, pgq.DEFAULTS).rate,
        "drain.default.pillars": pillars.drain(r.pillars, n, default).rate,
        "drain.default.pillars.other": pillars.drain(
            r.pillars, n, pillars.Setup(synchronous_commit=other)
        ).rate,
        "drain.best.raw": raw.drain(r.raw, n, 2, batch=50).rate,
        "drain.best.pgq": pgq.drain(r.pgq, n, pgq.BEST).rate,
        "drain.best.pillars": pillars.drain(r.pillars, n, best).rate,
        "drain.best.pillars.other": pillars.drain(
            r.pillars, n, pillars.Setup(processes=2, concurrency=50, synchronous_commit=other)
        ).rate,
    }


#: Drain rates to size the busy-pickup backlog by when this round measured none.
_GUESS = {"raw": 20_000.0, "pgq": 5_000.0, "pillars": 5_000.0}
_DRAINED_BY = {
    "raw": "drain.default.raw50",
    "pgq": "drain.default.pgq",
    "pillars": "drain.default.pillars",
}


def latency(r: Round) -> Figures:
    """Pickup at `probe_rate` through each system's default consumer, idle and draining.

    The backlog is sized from the system's own default drain rate this round,
    to outlast the probes by half again; a figure whose backlog ran out
    anyway is noted.
    """
    rate, seconds = r.sizes.probe_rate, r.sizes.probe_seconds
    measure: dict[str, Callable[[int], tuple[Pickup, bool]]] = {
        "raw": lambda backlog: raw.pickup(r.raw, rate, seconds, backlog),
        "pgq": lambda backlog: pgq.pickup(r.pgq, rate, seconds, backlog),
        "pillars": lambda backlog: pillars.pickup(r.pillars, rate, seconds, backlog),
    }
    figures: Figures = {}
    for system, run in measure.items():
        idle, _ = run(0)
        drain_rate = r.figures.get(_DRAINED_BY[system], _GUESS[system])
        backlog = max(1_000, int(drain_rate * (seconds + 3) * 1.5))
        busy, lasted = run(backlog)
        if not lasted:
            r.notes.append(f"{system}: the {backlog:,}-job backlog ran out before the last probe")
        figures |= {
            f"pickup.idle.p50.{system}": idle.p50,
            f"pickup.idle.p99.{system}": idle.p99,
            f"pickup.busy.p50.{system}": busy.p50,
            f"pickup.busy.p99.{system}": busy.p99,
        }
    return figures


def churn(r: Round) -> Figures:
    """Flatness (last tenth's rate over the first's) of a big backlog at the best settings."""
    n = r.sizes.churn
    drains = {
        "raw": raw.drain(r.raw, n, 2, batch=50),
        "pgq": pgq.drain(r.pgq, n, pgq.BEST),
        "pillars": pillars.drain(r.pillars, n, pillars.Setup(processes=2, concurrency=50)),
    }
    for system, result in drains.items():
        r.notes.append(
            f"churn {system}: {n:,} jobs at {result.rate:,.0f}/s; first 10 % at "
            f"{result.first_rate:,.0f}/s, last 10 % at {result.last_rate:,.0f}/s"
        )
    return {f"churn.{system}": result.flatness for system, result in drains.items()}


def flow(r: Round) -> Figures:
    """What flow control costs: the same drain (2 x 50) plain, over 100 keys of limit 1,
    over 10,000 keys of limit 1, and from a queue limited to 50 running."""
    n, best = r.sizes.drain, pillars.Setup(processes=2, concurrency=50)
    return {
        "flow.plain": pillars.drain(r.pillars, n, best).rate,
        "flow.keys100": pillars.drain(r.pillars, n, best, keys=100).rate,
        "flow.keys10000": pillars.drain(r.pillars, n, best, keys=10_000).rate,
        "flow.queue_limit": pillars.drain(r.pillars, n, best, queue_limit=50).rate,
    }


def hand_off(r: Round) -> Figures:
    return handoff.measure(max(10_000, 4 * r.sizes.drain))


PARTS: dict[str, Callable[[Round], Figures]] = {
    "enqueue": enqueue,
    "cost": enqueue_cost,
    "cycle": cycle_cost,
    "handoff": hand_off,
    "drain": drain,
    "latency": latency,
    "churn": churn,
    "flow": flow,
}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Pillars queue benchmark")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; report medians")
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--scale", type=float, default=None, help="sizes times this (smoke runs)")
    parser.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts: {', '.join(PARTS)}, curve and profile (not by default)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a server to use (default: a private embedded one); databases "
        "bench_<pid>_<system> are created there and dropped at the end",
    )
    parser.add_argument(
        "--worker-log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="LOG_LEVEL of the Pillars workers (default: INFO, the documented default, "
        "with a line per finished attempt; WARNING leaves that line out)",
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS) - {"profile", "curve"}
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.parts = parts
    return args


def _legend(sync_default: bool) -> str:
    return (
        f"raw: psycopg loops (bench/raw.py); pgqueuer {version('pgqueuer')} over asyncpg, "
        f"defaults: {pgq.DEFAULTS.describe()}, best: {pgq.BEST.describe()}; pillars: "
        f"worker.py, defaults: 1 process, concurrency {_defaults().worker_concurrency}, "
        f"WORKER_SYNCHRONOUS_COMMIT {'on' if sync_default else 'off'}, "
        f"LOG_LEVEL {pillars.WORKER_LOG_LEVEL}; ratios are pillars / raw and pillars / pgqueuer"
    )


def main() -> int:
    args = _arguments()
    pillars.WORKER_LOG_LEVEL = args.worker_log_level
    factor = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    sizes = Sizes().scaled(factor)
    sync_default = _defaults().worker_synchronous_commit
    table = rows(sync_default)
    with server.databases(args.database_url) as dbs, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        raw_dsn = dbs.dsn("raw")
        r = Round(
            raw_dsn,
            pgq.prepare(dbs.dsn("pgqueuer"), logs),
            pillars.prepare(dbs.dsn("pillars"), logs),
            sizes,
            {},
            [],
        )
        print(f"server: {dbs.description}")
        print(f"sizes: {sizes}; load average at start: {_load()}")
        print(_legend(sync_default), flush=True)
        results: list[Figures] = []
        for number in range(1, args.rounds + 1):
            r.figures, r.notes = {}, []
            for part in args.parts:
                if part in PARTS:
                    r.figures |= PARTS[part](r)
            if not r.figures:
                break  # only the profile was asked for
            results.append(r.figures)
            print(f"\nround {number} of {args.rounds} (load average {_load()})")
            _print(
                render(table, r.figures),
                render_cost(r.figures),
                cycle.render(r.figures),
                handoff.render(r.figures),
                render_flow(r.figures),
                *r.notes,
            )
        if len(results) > 1:
            middle, ratios = medians(table, results)
            print(f"\nmedians over {args.rounds} rounds (load average {_load()})")
            _print(
                render(table, middle, ratios),
                render_cost(middle),
                cycle.render(middle),
                handoff.render(middle),
                render_flow(middle),
            )
        if "curve" in args.parts:
            from bench import curve

            points = {
                (k, c): curve.point(r.pillars, sizes.drain, k, c)
                for c in curve.CONCURRENCIES
                for k in curve.PROCESSES
            }
            print("\n" + curve.render(points), flush=True)
        if "profile" in args.parts:
            from bench.profile import profile

            print("\n" + profile(r.pillars, sizes.drain), flush=True)
        r.pillars.engine.dispose()
    return 0


def _print(*blocks: str) -> None:
    print("\n".join(block for block in blocks if block), flush=True)


def _defaults() -> Settings:
    """The settings a worker gets from an environment that sets nothing but the database."""
    return Settings.from_env({"DATABASE_URL": "postgresql://localhost/defaults"})


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
