"""Starting and watching the real worker and cron processes under test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def written_lines(path: Path) -> list[str]:
    """The lines a running process has written to `path` so far: a line still being
    appended (no newline yet) is left for the next look."""
    text = path.read_text() if path.exists() else ""
    return text[: text.rfind("\n") + 1].splitlines()


def start(script: str, env: Mapping[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start `python script args` in the project root, output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_module(
    module: str, env: Mapping[str, str], *args: str, log: Path
) -> subprocess.Popen[bytes]:
    """Start `python -m module args` (e.g. gunicorn) in the project root, output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def catches(process: subprocess.Popen[bytes], signum: int) -> bool:
    """Whether `process` has a handler installed for `signum` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """Terminate `process` if it still runs and return its exit code."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
