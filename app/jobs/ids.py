"""Job ids: UUIDv7 (RFC 9562), made in the process that enqueues.

Time-ordered ids land at the right edge of the primary-key index instead of
on a random page, which keeps inserts cheap as the table grows, and they
sort by creation time, which keyset pagination can use. Making them here
also spares the server `gen_random_uuid()` (a strong-random call per row,
measurably slow in bulk). Raw SQL inserts still get the column default.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
#: `rand_a` (12 bits) counts ids within one millisecond (RFC 9562, method 1),
#: starting low enough to leave room for thousands more in the same millisecond.
_COUNTER_MAX = 0xFFF
_COUNTER_START = 0x3FF

_lock = threading.Lock()
_last = (0, 0)


def _from(millis: int, counter: int, rand: bytes) -> uuid.UUID:
    rand_b = int.from_bytes(rand, "big") & ((1 << 62) - 1)
    return uuid.UUID(int=(millis << 80) | _VERSION | (counter << 64) | _VARIANT | rand_b)


def _reserve(count: int) -> tuple[int, int]:
    """The (millisecond, first counter) of `count` ids, in order after every id made here.

    Ids of one process sort in the order they were made, even within one
    millisecond; when the counter runs out, the millisecond moves on.
    """
    global _last
    now = time.time_ns() // 1_000_000
    with _lock:
        millis, counter = _last
        if now > millis:
            millis, counter = now, int.from_bytes(os.urandom(2), "big") & _COUNTER_START
        else:
            counter += 1
        if counter + count - 1 > _COUNTER_MAX:
            millis, counter = millis + 1, 0
        _last = (millis, counter + count - 1)
    return millis, counter


def new_job_id() -> uuid.UUID:
    """Return a fresh UUIDv7, later than every id this process made before."""
    millis, counter = _reserve(1)
    return _from(millis, counter, os.urandom(8))


def job_id_at(moment: float) -> uuid.UUID:
    """A UUIDv7 for the Unix time `moment`: for back-dated rows in tests and fixtures."""
    rand = os.urandom(10)
    return _from(int(moment * 1000), int.from_bytes(rand[:2], "big") & _COUNTER_MAX, rand[2:])


def new_job_ids(count: int) -> list[uuid.UUID]:
    """Return `count` fresh UUIDv7s in order, with one call for randomness."""
    ids: list[uuid.UUID] = []
    rand = os.urandom(8 * count)
    while len(ids) < count:
        chunk = min(count - len(ids), _COUNTER_MAX + 1)
        millis, counter = _reserve(chunk)
        for n in range(chunk):
            at = 8 * len(ids)
            ids.append(_from(millis, counter + n, rand[at : at + 8]))
    return ids
