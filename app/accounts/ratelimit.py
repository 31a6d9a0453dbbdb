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
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, insert, select, text
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


def seconds_from_now(seconds: float) -> ColumnElement[datetime]:
    """The database's `now()` plus `seconds`: every time is compared on one clock."""
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def hit(session: Session, limits: Sequence[tuple[str, Rate]]) -> None:
    """Count one event under every key of `limits`, or raise `RateLimited` and count none.

    All keys are checked before any is counted, so being refused by one limit
    (the address) does not use up another (the user's).
    """
    keys = sorted({key[:MAX_KEY_LENGTH] for key, _ in limits})
    # One statement takes every lock in a fixed order (by hash), so two
    # requests sharing keys can never each hold one and wait for the other.
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock(:namespace, h)"
            " FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) k) s"
            " ORDER BY h"
        ),
        {"namespace": RATE_LOCK_NAMESPACE, "keys": keys},
    )
    for key, rate in limits:
        _check(session, key[:MAX_KEY_LENGTH], rate)
    session.execute(
        insert(RateEvent).values(
            [
                {"key": key[:MAX_KEY_LENGTH], "expires_at": seconds_from_now(rate.seconds)}
                for key, rate in limits
            ]
        )
    )


def _check(session: Session, key: str, rate: Rate) -> None:
    # An index range scan on (key, expires_at): only the key's unexpired events.
    count, wait = session.execute(
        select(
            func.count(), func.extract("epoch", func.min(RateEvent.expires_at) - func.now())
        ).where(RateEvent.key == key, RateEvent.expires_at > func.now())
    ).one()
    if count >= rate.count:
        raise RateLimited(key, retry_after=max(1, int(float(wait or 0)) + 1))


def prune(session: Session) -> int:
    """Delete expired events: they count toward nothing any more."""
    result = session.execute(delete(RateEvent).where(RateEvent.expires_at <= func.now()))
    return int(cast(CursorResult[Any], result).rowcount)
