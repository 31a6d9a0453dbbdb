"""What a rate limit adds to a request: `.venv/bin/python -m bench.ratelimit [--seconds S]`.

Threads, each with its own connection like gunicorn's, count events as an
upload does (two keys: the user's and the address's, then a commit), beside
a baseline measured in the same run on the same server: the same commit with
a plain insert of the same rows and no locks. Scenarios: every thread its own
user (no waiting on each other), and one user whose requests all share their
keys (they queue on the keys' locks), each with a durable commit and with the
asynchronous commit uploads use. Prints p50/p99 per event and events/s, and
the ratios to the baseline. About a minute.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.accounts.ratelimit import hit
from app.config import Rate, Settings
from app.db import make_engine
from bench.web_setup import database

THREADS = 8
#: Like the default upload rates; keys move on before they fill, as many users would.
RATE = Rate(30, 3600)
PER_KEY = 25

Step = Callable[[Session, int], None]


def plain_insert(session: Session, n: int) -> None:
    session.execute(
        text(
            "INSERT INTO rate_events (key, expires_at)"
            " VALUES (:a, now() + interval '1 hour'), (:b, now() + interval '1 hour')"
        ),
        {"a": f"user:{n // PER_KEY}", "b": f"addr:{n // PER_KEY}"},
    )


def counted(session: Session, n: int) -> None:
    hit(session, [(f"user:{n // PER_KEY}", RATE), (f"addr:{n // PER_KEY}", RATE)])


def run(engine: Engine, step: Step, shared: bool, durable: bool, seconds: float) -> list[float]:
    """Run `step` + commit in THREADS threads for `seconds`; return each one's latency in ms."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE rate_events"))
    shared_numbers, latencies = itertools.count(), []
    lock, stop = threading.Lock(), time.monotonic() + seconds

    def work(thread: int) -> None:
        own = itertools.count(thread * 10_000_000)
        mine: list[float] = []
        with Session(engine) as session:
            while time.monotonic() < stop:
                n = next(shared_numbers) if shared else next(own)
                started = time.perf_counter()
                if not durable:
                    session.execute(text("SET LOCAL synchronous_commit = off"))
                step(session, n)
                session.commit()
                mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def figures(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98], len(latencies) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pillars-bench-rate-") as tmp:
        _, server = database(Path(tmp))
        engine = make_engine(Settings.from_env(), pool_size=THREADS)
        print(f"{THREADS} threads, {args.seconds:g} s each; ratios to the baseline beside it")
        print(
            f"{'scenario':<62} {'p50 ms':>7} {'p99 ms':>7} {'ev/s':>7} {'p50 x':>6} {'ev/s x':>7}"
        )
        for shared, durable in itertools.product((False, True), (True, False)):
            who = "one user, shared keys" if shared else "a user per thread"
            commit = "durable commit" if durable else "async commit"
            base = figures(run(engine, plain_insert, shared, durable, args.seconds), args.seconds)
            mine = figures(run(engine, counted, shared, durable, args.seconds), args.seconds)
            for label, (p50, p99, rate) in (("baseline: plain insert", base), ("hit()", mine)):
                name = f"{who}, {commit}: {label}"
                ratio = f"{p50 / base[0]:>6.2f} {rate / base[2]:>7.2f}" if label == "hit()" else ""
                print(f"{name:<62} {p50:>7.2f} {p99:>7.2f} {rate:>7.0f} {ratio}")
        engine.dispose()
        server.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
