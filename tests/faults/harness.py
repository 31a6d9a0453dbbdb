"""Real processes under fault: a supervised fleet of workers, and the books.

The fleet restarts any worker that dies, like a platform's process manager,
and remembers when it killed which one, so recovery times can be measured.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text

from tests.processes import catches, start, stop, wait_for


class Fleet:
    """`size` processes of `script` (worker.py by default) kept alive until `close()`."""

    def __init__(
        self, env: Mapping[str, str], size: int, logs: Path, *args: str, script: str = "worker.py"
    ) -> None:
        self.env, self.args, self.logs, self.script = dict(env), args, logs, script
        self.procs = [self._spawn(i) for i in range(size)]
        self.kills: dict[int, float] = {}  # pid -> time.time() of the kill
        self.restarts = 0
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        name = Path(self.script).stem
        return start(self.script, self.env, *self.args, log=self.logs / f"{name}-{index}.log")

    def _supervise(self) -> None:
        while not self._closing.wait(0.1):
            with self._lock:
                for index, proc in enumerate(self.procs):
                    if proc.poll() is not None and not self._closing.is_set():
                        self.procs[index] = self._spawn(index)
                        self.restarts += 1

    def kill_random(self, sig: int = signal.SIGKILL) -> int:
        with self._lock:
            proc = random.choice([p for p in self.procs if p.poll() is None])
            self.kills[proc.pid] = time.time()
            proc.send_signal(sig)
            return proc.pid

    def alive(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def close(self) -> list[int]:
        """Stop supervising, SIGTERM everyone, return the exit codes.

        A process the supervisor has only just started gets its SIGTERM once
        it can take one (`app/shutdown.py`, its first step): before that,
        Python itself is still starting and the signal's default action ends
        it (-15), which says nothing about the worker.
        """
        self._closing.set()
        self._thread.join()
        for process in self.procs:
            wait_for(
                lambda: process.poll() is not None or catches(process, signal.SIGTERM),  # noqa: B023
                what=f"worker {process.pid} to take signals",
            )
        return [stop(p, timeout=30) for p in self.procs]


@dataclass
class Books:
    """Every enqueued job must reach exactly one final state."""

    enqueued: int
    states: Counter[str]
    executions: Counter[int] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return (
            self.enqueued
            - self.states["succeeded"]
            - self.states["failed"]
            - self.states["cancelled"]
        )

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.executions.values() if count > 1)


def books(
    engine: Engine, enqueued: int, ledger: Path | None = None, name: str | None = None
) -> Books:
    """The books of every job, or of the jobs named `name` (others may share the table)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT state, count(*) FROM jobs WHERE CAST(:name AS text) IS NULL OR name = :name"
                " GROUP BY state"
            ),
            {"name": name},
        )
        states: Counter[str] = Counter({state: count for state, count in rows})
    executions: Counter[int] = Counter()
    if ledger is not None and ledger.exists():
        executions.update(int(line.split()[0]) for line in ledger.read_text().splitlines())
    return Books(enqueued, states, executions)


def settled(engine: Engine, enqueued: int, name: str | None = None) -> bool:
    """True once every job (or every job named `name`) is in a final state."""
    with engine.connect() as conn:
        done = conn.execute(
            text(
                "SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled')"
                " AND (CAST(:name AS text) IS NULL OR name = :name)"
            ),
            {"name": name},
        ).scalar_one()
    return bool(done >= enqueued)


def worker_pid(worker_id: str | None) -> int | None:
    """Worker ids read host:pid:token."""
    if not worker_id:
        return None
    try:
        return int(worker_id.split(":")[1])
    except (IndexError, ValueError):
        return None


def long_run() -> bool:
    """FAULTS_LONG=1 runs every scenario at its full length."""
    return os.environ.get("FAULTS_LONG") == "1"
