"""What one enqueue costs, part by part, in microseconds per job.

Two design questions get their price here before anyone builds them: a
SAVEPOINT around the INSERT (so a refused row cannot abort the caller's
transaction) costs two more round trips, measured with raw psycopg on one
connection (BEGIN; SAVEPOINT; INSERT; RELEASE; COMMIT against BEGIN; INSERT;
COMMIT); and the queue's own payload check, measured in-process with no
database at all. The same raw INSERT into Pillars' own `jobs` table then
shows how much of the gap is the table (its indexes and NOTIFY trigger)
rather than the code that fills it.

The differences are tens of microseconds while a shared machine's load
moves every figure by more than that within a minute, so the variants take
turns in chunks of 50 jobs (in a rotating order) and each adds up only its
own time: all of them see the same minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from app.jobs import enqueue, registry
from bench import pillars, raw

CHUNK = 50
#: The raw INSERT, into Pillars' table: its defaults fill the rest, as enqueue's do.
JOBS_INSERT = "INSERT INTO jobs (name, payload) VALUES (%s, %s)"


def measure(raw_dsn: str, target: pillars.Target, n: int) -> dict[str, float]:
    """Every part's microseconds per job, over `n` jobs each."""
    raw.setup(raw_dsn)
    pillars.reset(target)
    spec = registry.get("bench.noop")
    with (
        psycopg.connect(raw_dsn) as tx,
        psycopg.connect(raw_dsn, autocommit=True) as auto,
        psycopg.connect(target.dsn) as ours_tx,
        target.engine.connect() as conn,
        Session(conn) as session,
    ):

        def plain(i: int) -> None:
            tx.execute(raw.INSERT, ("noop", Jsonb({"n": i}), 0))
            tx.commit()

        def savepoint(i: int) -> None:
            tx.execute("SAVEPOINT enqueue")  # psycopg sends BEGIN first
            tx.execute(raw.INSERT, ("noop", Jsonb({"n": i}), 0))
            tx.execute("RELEASE SAVEPOINT enqueue")
            tx.commit()

        def autocommit(i: int) -> None:
            auto.execute(raw.INSERT, ("noop", Jsonb({"n": i}), 0))

        def jobs_table(i: int) -> None:
            ours_tx.execute(JOBS_INSERT, ("bench.noop", Jsonb({"n": i})))
            ours_tx.commit()

        def check(i: int) -> None:
            spec.encode_payload({"n": i})

        def ours(i: int) -> None:
            enqueue(session, "bench.noop", {"n": i})
            session.commit()

        variants: dict[str, Callable[[int], None]] = {
            "cost.raw": plain,
            "cost.savepoint": savepoint,
            "cost.autocommit": autocommit,
            "cost.jobs_table": jobs_table,
            "cost.check": check,
            "cost.pillars": ours,
        }
        spent = dict.fromkeys(variants, 0.0)
        order = list(variants)
        for first in range(0, n, CHUNK):
            order = order[1:] + order[:1]
            for key in order:
                started = time.perf_counter()
                for i in range(first, min(first + CHUNK, n)):
                    variants[key](i)
                spent[key] += time.perf_counter() - started
    return {key: seconds / n * 1e6 for key, seconds in spent.items()}
