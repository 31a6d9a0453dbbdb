"""A stop signal reaches the worker and cron whatever their main thread holds.

A Python signal handler runs in the main thread between two bytecodes. If
that thread is inside `Event.clear()` (the worker's loop clears its wake-up
event after every job) and the handler calls `Event.set()` on the same
event, the handler waits for a lock its own thread holds: the process logs
the signal and never stops. `shutdown.deliver` hands the signal to a
thread of its own. These run in a subprocess, which a hang cannot take the
suite down with.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The main thread holds the event's lock while the signal arrives, as
#: `Event.clear()` does; the handler must still get to set the event.
SCRIPT = """
import signal, sys, threading
from app import shutdown

woken = threading.Event()
if sys.argv[1] == "deliver":
    shutdown.deliver(lambda signum: woken.set())
else:
    signal.signal(signal.SIGTERM, lambda signum, frame: woken.set())
with woken._cond:
    signal.raise_signal(signal.SIGTERM)
    for _ in range(1000):
        pass
print("stopped" if woken.wait(10) else "not woken")
"""


def run(how: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), how],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_stop_signal_arriving_while_the_main_thread_holds_a_lock_is_still_handled() -> None:
    done = run("deliver")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_a_handler_taking_that_lock_in_the_main_thread_would_never_return() -> None:
    # What `deliver` is for: the plain handler deadlocks on the same script.
    try:
        run("plain", timeout=8)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the plain handler returned; the first test proves nothing")
