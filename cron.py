"""The cron pillar: `python cron.py` enqueues jobs on the schedules defined in code.

Runs until SIGTERM or SIGINT, then exits 0. Any number may run at once:
each occurrence is enqueued exactly once (see `app/cron/scheduler.py`).
A schedule that cannot run as written, a JOB_MODULES entry that is no
module, or a database it cannot reach or that is not migrated stops it at
start with one line that says what, and exit status 2.
"""

from __future__ import annotations

import sys

from dotenv import load_dotenv

from app import shutdown


def main() -> int:
    shutdown.defer()
    load_dotenv()
    from app import logs, preflight, tracing
    from app.config import ConfigError, get_settings
    from app.cron import ScheduleError, load_schedules
    from app.cron.scheduler import Scheduler
    from app.db import make_engine

    try:
        logs.configure("cron")
        settings = get_settings()
        schedules = load_schedules(settings.job_modules)
    except (ConfigError, ScheduleError) as error:
        print(f"cron: {error}", file=sys.stderr)
        return 2
    tracing.configure("pillars-cron")
    engine = make_engine(settings, pool_size=2, application_name="pillars-cron")
    problem = preflight.check(
        engine, patience=preflight.START_PATIENCE, stopping=shutdown.requested
    )
    if problem is not None:
        print(f"cron: {problem}", file=sys.stderr)
        return 2
    scheduler = Scheduler(engine, settings, schedules)
    logs.set_process(worker_id=scheduler.id)
    shutdown.deliver(lambda signum: scheduler.stop())
    if shutdown.honoured("cron"):
        return 0
    return scheduler.run()


if __name__ == "__main__":
    sys.exit(main())
