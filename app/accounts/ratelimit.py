"""Rate limits kept in the database: exact across every web process and machine.

A limit is a key (what, and for whom: `upload-user:7`, `signup-addr:…`) and
a `Rate`. Each counted action is a row in `rate_events` that expires after
the rate's period; a key is over its limit while it has `count` unexpired
rows. Keys are counted under a transaction advisory lock each, so two
requests can never both read "one left" and both go ahead.

Nothing here commits: the caller decides whether the counted action stands
(commit) or vanishes with the rest of its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, text
from sqlalchemy.orm import Session

from app.config import Rate
from app.models import RateEvent

#: First key of the advisory locks that serialize counting per rate key ("RAT");
#: distinct from the sign-in locks and the worker's life locks.
RATE_LOCK_NAMESPACE = 0x52_4154
#: Longest key stored; an address or id is far shorter, so nothing real is cut.
MAX_KEY_LENGTH = 200


class RateLimited(Exception):
    """Over a limit: `retry_after` says in how many seconds the oldest counted event expires."""

    def __init__(self, key: str, retry_after: int) -> None:
        super().__init__(f"{key}: over its limit; retry in {retry_after} s")
        self.key = key
        self.retry_after = retry_after


#: Takes every lock in a fixed order (by hash), so two requests sharing keys can never
#: each hold one and wait for the other. A statement of its own: a statement sees what
#: was committed when it began, so the counting must start after the locks are held.
LOCK = text(
    "SELECT pg_advisory_xact_lock(:namespace, h)"
    " FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) k) s"
    " ORDER BY h"
)

#: Counts each key's live events and, only if no key is full, adds one event per key;
#: returns the full keys with the seconds until their oldest counted event expires.
#: Each count reads at most `n` rows, newest first, off ix_rate_events_key_expires_at
#: (a key never holds many more: a refused hit adds nothing), and the oldest of those
#: is exactly when a slot frees up, even if the limit was lowered since.
COUNT_AND_ADD = text("""
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:counts AS int[]),
                             CAST(:seconds AS float8[])) AS w(key, n, seconds)
    ), live AS (
        SELECT w.key, w.n, w.seconds, c.events, c.oldest
        FROM wanted w CROSS JOIN LATERAL (
            SELECT count(*) AS events, min(expires_at) AS oldest FROM (
                SELECT expires_at FROM rate_events r
                WHERE r.key = w.key AND r.expires_at > now()
                ORDER BY r.expires_at DESC LIMIT w.n
            ) newest
        ) c
    ), full_keys AS (
        SELECT key, extract(epoch FROM oldest - now()) AS wait FROM live WHERE events >= n
    ), added AS (
        INSERT INTO rate_events (key, expires_at)
        SELECT key, now() + make_interval(secs => seconds) FROM live
        WHERE NOT EXISTS (SELECT FROM full_keys)
    )
    SELECT key, wait FROM full_keys ORDER BY wait DESC
""")


def hit(session: Session, limits: Sequence[tuple[str, Rate]]) -> None:
    """Count one event under every key of `limits`, or raise `RateLimited` and count none.

    All keys are checked before any is counted, so being refused by one limit
    (the address) does not use up another (the user's). Two statements, both
    in the caller's transaction; the locks are held until it ends.
    """
    rates = {key[:MAX_KEY_LENGTH]: rate for key, rate in limits}
    keys = sorted(rates)
    session.execute(LOCK, {"namespace": RATE_LOCK_NAMESPACE, "keys": keys})
    full = session.execute(
        COUNT_AND_ADD,
        {
            "keys": keys,
            "counts": [rates[k].count for k in keys],
            "seconds": [rates[k].seconds for k in keys],
        },
    ).first()
    if full is not None:
        key, wait = full
        raise RateLimited(key, retry_after=max(1, int(float(wait)) + 1))


def prune(session: Session) -> int:
    """Delete expired events: they count toward nothing any more."""
    result = session.execute(delete(RateEvent).where(RateEvent.expires_at <= func.now()))
    return int(cast(CursorResult[Any], result).rowcount)
