"""Schedules of the fault suite's cron scenarios (JOB_MODULES=...,tests.faults.cron_schedules).

`faults.gated`: every second, policy `all`. In a process started with
TEST_CRON_GATE=<folder>, its payload is a `Gate`: the step that reads it
once `<folder>/arm` exists writes `<folder>/held` and waits for
`<folder>/release`, so a test can freeze the process mid-step, holding the
schedule's row lock, exactly where a hung cron would hold it.

`faults.redefined`: policy `all`, defined by TEST_REDEFINED: `hourly` (at
TEST_HOURLY_AT) or `second`, so a test can roll a fleet from one definition
to the other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import schedule

from app.cron import Schedule, add


class Gate(Mapping[str, Any]):
    """An empty payload that holds the first step to read it after the test arms it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._held = False

    def _hold(self) -> None:
        if self._held or not (self._folder / "arm").exists():
            return
        self._held = True
        (self._folder / "held").write_text(str(os.getpid()))
        while not (self._folder / "release").exists():
            time.sleep(0.05)

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        self._hold()
        return iter(())

    def __len__(self) -> int:
        return 0


_gate = os.environ.get("TEST_CRON_GATE")
add(
    Schedule(
        "faults.gated",
        schedule.every().second,
        "test.noop",
        Gate(Path(_gate)) if _gate else {},
        missed="all",
    )
)

_definitions = {
    "hourly": schedule.every().hour.at(os.environ.get("TEST_HOURLY_AT", ":00")),
    "second": schedule.every().second,
}
add(
    Schedule(
        "faults.redefined",
        _definitions[os.environ.get("TEST_REDEFINED", "hourly")],
        "test.noop",
        missed="all",
    )
)
