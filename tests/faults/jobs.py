"""Handlers of the fault suite; workers load them through JOB_MODULES."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.jobs import job


@job("faults.work", max_attempts=20)
def work(n: int, seconds: float, ledger: str) -> int:
    """Sleep, then record one completed execution of job `n` in the ledger.

    One short append per line is atomic on POSIX, so many processes can share
    the file; a worker killed mid-sleep records nothing.
    """
    time.sleep(seconds)
    with Path(ledger).open("a") as file:
        file.write(f"{n} {os.getpid()}\n")
    return os.getpid()


@job("faults.poison", max_attempts=3)
def poison() -> None:
    """Kill the worker process, like a crashing C extension."""
    os.kill(os.getpid(), 9)


@job("faults.pickup")
def pickup(t: float) -> float:
    """Seconds from enqueue to start, kept as the result."""
    return time.time() - t


@job("faults.secret", max_attempts=1)
def secret(password: str, api_key: str) -> None:
    raise RuntimeError(f"login refused for password={password} key {api_key}")


@job("faults.block", timeout=0.5, max_attempts=1)
def block() -> None:
    """Blocked in C code for an hour: only abandoning its thread frees the slot."""
    time.sleep(3600)
