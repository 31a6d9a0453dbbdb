"""Moves this Python process's wall clock by PILLARS_TEST_CLOCK_SKEW seconds.

Put on PYTHONPATH of a worker or cron under test, it stands in for a
machine whose clock is off: `time.time()`, `time.time_ns()` and
`datetime.now()` / `utcnow()` / `today()` (and `date.today()`) all read the
moved clock, the monotonic clock stays true. Only Python code sees it,
which is all the code that could act on it.
"""

from __future__ import annotations

import datetime as _datetime
import os
import time as _time

SKEW = float(os.environ.get("PILLARS_TEST_CLOCK_SKEW", "0") or 0)

if SKEW:
    _true_time, _true_time_ns = _time.time, _time.time_ns

    def _moved_time() -> float:
        return _true_time() + SKEW

    def _moved_time_ns() -> int:
        return _true_time_ns() + int(SKEW * 1e9)

    _time.time = _moved_time
    _time.time_ns = _moved_time_ns

    # No instance dict (__slots__): C extensions that check the size of the
    # datetime types they are handed must find them unchanged.
    class _MovedDatetime(_datetime.datetime):
        __slots__ = ()

        @classmethod
        def now(cls, tz: _datetime.tzinfo | None = None) -> _MovedDatetime:
            return cls.fromtimestamp(_moved_time(), tz)

        @classmethod
        def utcnow(cls) -> _MovedDatetime:
            moment = cls.fromtimestamp(_moved_time(), _datetime.UTC)
            return moment.replace(tzinfo=None)

        @classmethod
        def today(cls) -> _MovedDatetime:
            return cls.fromtimestamp(_moved_time())

    class _MovedDate(_datetime.date):
        __slots__ = ()

        @classmethod
        def today(cls) -> _MovedDate:
            return cls.fromtimestamp(_moved_time())

    _datetime.datetime = _MovedDatetime  # type: ignore[misc]
    _datetime.date = _MovedDate  # type: ignore[misc]
