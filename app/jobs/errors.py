"""The few exceptions of the queue: two for callers, two for handlers, one for timeouts."""

from __future__ import annotations

import math

#: The longest delay a `Retry` keeps (enqueue's own limit, `options.MAX_DELAY`):
#: a run time past it would be one the jobs table refuses.
LONGEST_RETRY = 36_525 * 86_400.0


class UnknownJob(LookupError):
    """No handler is registered under this job name."""


class InvalidPayload(ValueError):
    """The payload is not a JSON object that fits the handler's signature."""


class Retry(Exception):
    """Raised by a handler to run the job again after `delay` seconds.

    The attempt still counts toward `max_attempts`, so a job that keeps asking
    for retries ends `failed` like any other. A delay past `LONGEST_RETRY`
    (infinity included) is kept at it; a negative or NaN one means now.
    """

    def __init__(self, delay: float = 0.0, reason: str = "retry requested") -> None:
        super().__init__(reason)
        try:
            seconds = float(delay)
        except OverflowError:  # an int too large for a float
            seconds = LONGEST_RETRY
        self.delay = 0.0 if math.isnan(seconds) else min(max(0.0, seconds), LONGEST_RETRY)
        self.reason = reason


class Discard(Exception):
    """Raised by a handler to end the job as `failed` at once, without retrying."""

    def __init__(self, reason: str = "discarded by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class JobTimeout(BaseException):
    """Raised inside a handler's thread when the job outlives its timeout.

    A `BaseException`, so that a handler's broad `except Exception` cannot
    swallow it.
    """
