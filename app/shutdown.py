"""A stop asked for while a pillar is still starting is kept, never fatal.

Importing the app, loading job modules and checking the database take about
a second. A platform rolling a release out, or a developer's Ctrl-C, may
stop a process inside that second; left to the default action, SIGTERM
kills it (exit -15, which supervisors count as a crash) and SIGINT prints a
KeyboardInterrupt traceback. `worker.py` and `cron.py` call `defer()` first
and, once their own handlers are in place, `honoured()`: a stop that came
early then ends the process with exit 0 before any claim or enqueue. This
module imports nothing of the app's, so deferring happens before the slow
imports and costs nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

_received: list[int] = []


def defer() -> None:
    """Remember SIGTERM and SIGINT until the process installs its own handlers."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _remember)


def requested() -> bool:
    """Whether a stop has arrived while starting (for waits that should end at once)."""
    return bool(_received)


def honoured(process: str) -> bool:
    """Whether a stop arrived while starting (logged); the caller then exits 0."""
    if not _received:
        return False
    logging.getLogger(__name__).info(
        "%s stopped while starting (signal %d): nothing claimed or enqueued", process, _received[0]
    )
    return True


def _remember(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)


def deliver(handle: Callable[[int], None]) -> None:
    """From now on, call `handle(signum)` for each SIGTERM and SIGINT, on a thread of its own.

    A Python signal handler runs in the main thread between two bytecodes,
    possibly while that thread holds a lock: an Event's (in `clear()` or
    on its way into `wait()`), a logging handler's queue. A handler that
    takes the same lock (`Event.set()`, a log line) then waits for itself
    and the process never stops. Here the handler does nothing; the
    interpreter's C-level handler writes the signal's number to a pipe
    (`signal.set_wakeup_fd`), and a daemon thread reads it and calls
    `handle`, where any lock may be taken.
    """
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _noted)
    threading.Thread(target=_relay, args=(read, handle), name="signals", daemon=True).start()


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the wakeup pipe already carries the signal."""


def _relay(read: int, handle: Callable[[int], None]) -> None:
    while True:
        for signum in os.read(read, 64):
            if signum in (signal.SIGTERM, signal.SIGINT):
                handle(signum)
