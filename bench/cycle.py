"""What one worker cycle costs, by batch size, planned once or at every run.

The worker's loop runs one statement per cycle (`claims.cycle`: save the
outcomes of finished jobs, claim as many new ones), prepared by psycopg
and planned once, generically (`claims.loop_connection`). Without that,
PostgreSQL plans the 7 kB statement anew at every run, for its LIMIT and
its batch: this part prices the difference on a backlog, for batches from
one job (a quiet worker picking up a new job) to 200 (a busy one).

Both variants take turns in chunks, in a rotating order, on their own
autocommit connections, durable commits included; each cycle saves as many
outcomes as it claims, so the table's churn is the same for both.
"""

from __future__ import annotations

import statistics
import time

from sqlalchemy import Connection

from app.config import Settings
from app.jobs import claims
from app.jobs.execution import Claimed, Outcome
from bench import pillars

BATCHES = (1, 10, 50, 200)
CHUNK = 8
#: The variants: the worker's own loop connection, planned once (generic), and
#: the same statement planned at every run (custom).
MODES = ("generic", "custom")


def measure(target: pillars.Target, backlog: int, rounds: int = 6) -> dict[str, float]:
    """Median milliseconds per cycle, `cycle.<mode>.<batch>`, over a `backlog` of queued jobs."""
    pillars.reset(target)
    pillars.commit_backlog(target, backlog)
    sessions = {mode: _session(target, mode) for mode in MODES}
    held: dict[str, list[Claimed]] = {mode: [] for mode in MODES}
    spent: dict[str, list[float]] = {}
    try:
        for turn in range(rounds):
            order = list(MODES) if turn % 2 else list(MODES)[::-1]
            for batch in BATCHES:
                for mode in order:
                    for _ in range(CHUNK):
                        took = _cycle(sessions[mode], f"bench-{mode}", held[mode], batch)
                        spent.setdefault(f"cycle.{mode}.{batch}", []).append(took)
    finally:
        for session in sessions.values():
            session.invalidate()  # its session settings must not reach the pool
            session.close()
    return {key: statistics.median(values) for key, values in spent.items()}


def _session(target: pillars.Target, mode: str) -> Connection:
    if mode == "generic":
        return claims.loop_connection(target.engine, Settings.from_env())
    conn = target.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
    return conn


def _cycle(conn: Connection, worker_id: str, held: list[Claimed], batch: int) -> float:
    """One cycle that saves up to `batch` held jobs as done and claims `batch`; its ms."""
    outcomes = [Outcome(job, ok=True, result="null") for job in held[:batch]]
    del held[:batch]
    started = time.perf_counter()
    done = claims.cycle(conn, worker_id, outcomes, None, batch)
    took = (time.perf_counter() - started) * 1000
    held += done.claimed
    return took


def render(figures: dict[str, float]) -> str:
    """Milliseconds per cycle by batch size, planned once against planned every time."""
    if "cycle.generic.1" not in figures:
        return ""
    lines = [
        f"{'one cycle (save n outcomes, claim n), ms':<58} "
        f"{'once':>9} {'each run':>9} {'x faster':>9}"
    ]
    for batch in BATCHES:
        once, each = figures[f"cycle.generic.{batch}"], figures[f"cycle.custom.{batch}"]
        label = f"n = {batch}"
        lines.append(f"{label:<58} {once:>9.2f} {each:>9.2f} {each / once:>9.2f}")
    return "\n".join(lines)
