"""The fleet scenario's handler: work that uses the database, as most handlers do."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import text

from app.db import get_engine
from app.jobs import job


@job("fleet.work", max_attempts=20)
def work(n: int, seconds: float, ledger: str) -> None:
    """Sleep, write in the database for a moment, then record one execution of job `n`.

    The write takes one of the worker's handler connections, so a fleet of
    these needs its slots' worth of connections, as the operations guide's
    sizing assumes.
    """
    time.sleep(seconds)
    with get_engine().begin() as conn:
        conn.execute(text("SELECT pg_sleep(0.005)"))
    with Path(ledger).open("a") as file:
        file.write(f"{n} {os.getpid()}\n")
