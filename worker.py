"""The worker pillar: `python worker.py [--queues a,b] [--concurrency N]`.

Runs jobs from the queue until SIGTERM or SIGINT, then finishes what it runs
within the grace period (WORKER_SHUTDOWN_GRACE) and exits 0. A setup it
cannot work with (a JOB_MODULES entry that is no module, a database it
cannot reach or that is not migrated) stops it at start with one line that
says what to do, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from dotenv import load_dotenv

from app import shutdown

#: Connections a worker holds for itself, besides its presence and its handlers'
#: pool: the loop's, the heartbeat's, the express claim's (`app.jobs.express`), and
#: one for promotions and progress.
OWN_CONNECTIONS = 4


def main(argv: list[str] | None = None) -> int:
    shutdown.defer()
    load_dotenv()
    from app import logs, preflight, tracing
    from app.config import ConfigError, get_settings
    from app.db import get_engine, make_engine
    from app.jobs import load_job_modules, options
    from app.jobs.worker import Worker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", help="comma-separated queues to work (default: all)")
    parser.add_argument(
        "--concurrency", type=_concurrency, help="jobs at once (WORKER_CONCURRENCY)"
    )
    args = parser.parse_args(argv)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    for queue in queues or ():
        try:
            options.queue_name(queue, "a name in --queues")
        except ValueError as error:
            parser.error(str(error))
    if args.concurrency:
        # One figure for the whole process: the loop's slots and the handlers' pool.
        os.environ["WORKER_CONCURRENCY"] = str(args.concurrency)
    try:
        logs.configure("worker")
        settings = get_settings()
        load_job_modules(settings.job_modules)
    except ConfigError as error:
        print(f"worker: {error}", file=sys.stderr)
        return 2
    # The worker's own statements (its loop, heartbeat and rescue, promotions,
    # progress) get connections of their own: handlers that hold every one of
    # theirs (app.db.get_engine) cannot stall them.
    tracing.configure("pillars-worker", late_after=settings.trace_link_after)
    engine = make_engine(settings, pool_size=OWN_CONNECTIONS, application_name="pillars-worker")
    problem = preflight.check(
        engine, patience=preflight.START_PATIENCE, stopping=shutdown.requested
    )
    if problem is not None:
        print(f"worker: {problem}", file=sys.stderr)
        return 2
    # Handlers share the process's engine (WORKER_DB_POOL), with any code of
    # theirs that asks `app.db.get_engine()` for it.
    worker = Worker(engine, settings, queues=queues, handler_engine=get_engine())
    worker.install_signal_handlers()
    if shutdown.honoured("worker"):
        return 0
    return worker.run()


def _concurrency(text: str) -> int:
    from app.config import MAX_CONCURRENCY

    value = int(text)
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_CONCURRENCY:,}, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
