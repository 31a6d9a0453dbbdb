"""Background load for the web benchmark: a job that waits on I/O without using the CPU."""

from __future__ import annotations

import time

from app.jobs import job


@job("bench.wait", queue="bench")
def wait(seconds: float) -> None:
    """Stand in for a slow external call (an HTTP API, a mail server): sleep, holding no CPU."""
    time.sleep(seconds)
