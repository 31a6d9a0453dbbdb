"""The cron pillar: `python cron.py` enqueues jobs on schedules.

Schedules arrive with the scheduler; until then this process idles so that a
Procfile runner, which stops every process when one exits, keeps the others up.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from dotenv import load_dotenv


def main() -> int:
    load_dotenv()
    from app import logs

    logs.configure("cron")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    logging.getLogger("cron").info("cron started: no schedules defined yet")
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
