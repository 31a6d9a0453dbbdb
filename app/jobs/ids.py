"""Job ids: UUIDv7 (RFC 9562), made in the process that enqueues.

Time-ordered ids land at the right edge of the primary-key index instead of
on a random page, which keeps inserts cheap as the table grows, and they
sort by creation time, which keyset pagination can use. Making them here
also spares the server `gen_random_uuid()` (a strong-random call per row,
measurably slow in bulk). Raw SQL inserts still get the column default.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def _from(millis: int, rand: bytes) -> uuid.UUID:
    bits = int.from_bytes(rand, "big")  # 80 random bits
    rand_a = (bits >> 62) & 0xFFF
    rand_b = bits & ((1 << 62) - 1)
    return uuid.UUID(int=(millis << 80) | _VERSION | (rand_a << 64) | _VARIANT | rand_b)


def new_job_id() -> uuid.UUID:
    """Return a fresh UUIDv7."""
    return _from(time.time_ns() // 1_000_000, os.urandom(10))


def job_id_at(moment: float) -> uuid.UUID:
    """A UUIDv7 for the Unix time `moment`: for back-dated rows in tests and fixtures."""
    return _from(int(moment * 1000), os.urandom(10))


def new_job_ids(count: int) -> list[uuid.UUID]:
    """Return `count` fresh UUIDv7s with one call for randomness."""
    millis = time.time_ns() // 1_000_000
    rand = os.urandom(10 * count)
    return [_from(millis, rand[i : i + 10]) for i in range(0, 10 * count, 10)]
