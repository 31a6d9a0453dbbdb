"""The pgqueuer peer's worker: `python -m bench.pgq_app [--batch-size N ...]`.

What `pgq run bench.pgq_app:create` does (its documented `pgqueuer.run`, on
uvloop like its CLI), without the CLI itself, whose option parsing fails
with this typer. A factory over an asyncpg connection with two entrypoints mirroring
`bench.jobs`: `noop` does nothing, `pickup` records how long its job took to
arrive. The benchmark reads two files from BENCH_PGQ_DIR: `ready-<pid>` once
the worker's LISTEN round trip works, and `pickup-<pid>.json` (the pickup
latencies, in seconds) when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from pathlib import Path

import asyncpg
import pgqueuer
import uvloop
from pgqueuer import Job, PgQueuer


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """Build the worker; on the way out, write down the pickup latencies it saw."""
    folder = Path(os.environ["BENCH_PGQ_DIR"])
    connection = await asyncpg.connect(os.environ["BENCH_PGQ_DSN"])
    pgq = PgQueuer.from_asyncpg_connection(connection)
    latencies: list[float] = []

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        """Nothing: the drain rate is the queue's own cost."""

    @pgq.entrypoint("pickup")
    async def pickup(job: Job) -> None:
        latencies.append(time.time() - float(job.payload or b"nan"))

    announcer = asyncio.create_task(_announce(pgq, folder / f"ready-{os.getpid()}"))
    try:
        yield pgq
    finally:
        announcer.cancel()
        (folder / f"pickup-{os.getpid()}.json").write_text(json.dumps(latencies))
        await connection.close()


async def _announce(pgq: PgQueuer, marker: Path) -> None:
    """Touch `marker` once a NOTIFY sent by this worker comes back through its LISTEN."""
    while True:
        with suppress(Exception):  # not listening yet: the probe times out
            await pgq.qm.listener_healthy(timeout=timedelta(seconds=0.5))
            marker.touch()
            return
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description="a pgqueuer worker for the benchmark")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    args = parser.parse_args()
    uvloop.run(
        pgqueuer.run(
            create, batch_size=args.batch_size, max_concurrent_tasks=args.max_concurrent_tasks
        )
    )


if __name__ == "__main__":
    main()
