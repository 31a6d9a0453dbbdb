"""Worker subprocesses for the benchmark: start them, watch them, stop them.

Each system's workers run as real processes, the way they run in production,
so a drain measures process start-up never, but wake-up, claiming and
saving always. Their output goes to a log file per process, shown when one
dies, so a failed run says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Settings a caller's shell may carry that would change what "defaults" means.
_SCRUBBED_PREFIXES = ("WORKER_", "PGQUEUER_")
_SCRUBBED = {"DATABASE_URL", "JOB_MODULES", "LOG_LEVEL", "PGDSN"}


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without queue settings, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }
    return {**env, **extra}


class WorkerDied(RuntimeError):
    """A worker process exited while the benchmark needed it."""


class Workers:
    """Processes started from one command line; `check` raises if any has died."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
        self.procs = procs
        self.logs = logs

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def check(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise WorkerDied(f"worker {proc.pid} exited with {proc.returncode}:\n{tail}")

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll `ready` every 50 ms until it is true; raise if a worker dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers did not become ready within {timeout:.0f}s: {what}")
            time.sleep(0.05)


@contextmanager
def running(
    command: Sequence[str], env: Mapping[str, str], count: int, log_dir: Path, name: str
) -> Iterator[Workers]:
    """Run `count` copies of `command` until the block ends, then SIGTERM (and reap) them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for n in range(count):
            log = log_dir / f"{name}-{n}-{time.monotonic_ns()}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(list(command), cwd=ROOT, env=dict(env), stdout=out, stderr=out)
                )
            logs.append(log)
        yield Workers(procs, logs)
    finally:
        stop(procs)


def stop(procs: Sequence[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """Ask every process to stop, give them `grace` seconds together, then kill the rest."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python() -> str:
    """The interpreter running the benchmark: the project's virtualenv."""
    return sys.executable
