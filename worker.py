"""The worker pillar: `python worker.py [--queues a,b] [--concurrency N]`.

Runs jobs from the queue until SIGTERM or SIGINT, then finishes what it runs
within the grace period (WORKER_SHUTDOWN_GRACE) and exits 0.
"""

from __future__ import annotations

import argparse
import sys

from dotenv import load_dotenv


def main(argv: list[str] | None = None) -> int:
    load_dotenv()
    from app import logs
    from app.config import get_settings
    from app.db import get_engine
    from app.jobs import load_job_modules
    from app.jobs.worker import Worker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", help="comma-separated queues to work (default: all)")
    parser.add_argument("--concurrency", type=int, help="jobs at once (WORKER_CONCURRENCY)")
    args = parser.parse_args(argv)
    logs.configure("worker")
    settings = get_settings()
    load_job_modules(settings.job_modules)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    worker = Worker(get_engine(), settings, queues=queues, concurrency=args.concurrency)
    worker.install_signal_handlers()
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
