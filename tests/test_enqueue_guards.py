"""Enqueue refuses in Python whatever the database would refuse, and never poisons the caller.

A refusal from the database aborts the caller's whole transaction; a caller
that catches the error and commits would then lose its own writes without a
word. So every bad value is refused before anything is sent, naming the
field, and the caller's transaction survives even what the database refuses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs import (
    InvalidPayload,
    JobRequest,
    UnknownJob,
    enqueue,
    enqueue_many,
    pause_queue,
    payloads,
    writing,
)
from app.jobs.registry import Registry
from app.models import Job, User

deep: Any = []
for _ in range(150):
    deep = [deep]
loop: list[Any] = [1]
loop.append({"again": loop})

#: (what, the enqueue, the error it raises, words the message must contain)
BAD: list[tuple[str, Callable[[Session], object], type[Exception], str]] = [
    (
        "NUL in a string",
        lambda s: enqueue(s, "test.record", {"path": "a\x00b", "marker": "m"}),
        InvalidPayload,
        "payload['path'] contains a NUL",
    ),
    (
        "NUL in a key",
        lambda s: enqueue(s, "test.echo", {"data": {"k\x00": 1}}),
        InvalidPayload,
        "contains a NUL",
    ),
    (
        "lone surrogate",
        lambda s: enqueue(s, "test.record", {"path": "\udc80", "marker": "m"}),
        InvalidPayload,
        "lone surrogate",
    ),
    (
        "a list that contains itself",
        lambda s: enqueue(s, "test.echo", {"data": loop}),
        InvalidPayload,
        "not JSON: Circular reference",
    ),
    (
        "nested 150 deep",
        lambda s: enqueue(s, "test.echo", {"data": deep}),
        InvalidPayload,
        "nested deeper than 100",
    ),
    (
        "nested 5000 deep",
        lambda s: enqueue(s, "test.echo", {"data": _nest(5000)}),
        InvalidPayload,
        "nested deeper than 100",
    ),
    (
        "a number of 5000 digits",
        lambda s: enqueue(s, "test.echo", {"data": 10**4299 * 10**700}),
        InvalidPayload,
        "4300 digits",
    ),
    (
        "over 1 MB",
        lambda s: enqueue(s, "test.echo", {"data": "x" * (1 << 20)}),
        InvalidPayload,
        "the limit is 1,048,576",
    ),
    (
        "priority past int4",
        lambda s: enqueue(s, "test.add", {"a": 1}, priority=2**31),
        ValueError,
        "priority must be between",
    ),
    (
        "priority a bool",
        lambda s: enqueue(s, "test.add", {"a": 1}, priority=True),
        ValueError,
        "priority must be a whole number",
    ),
    (
        "max_attempts past int4",
        lambda s: enqueue(s, "test.add", {"a": 1}, max_attempts=2**31),
        ValueError,
        "max_attempts must be between",
    ),
    (
        "max_attempts True",
        lambda s: enqueue(s, "test.add", {"a": 1}, max_attempts=True),
        ValueError,
        "max_attempts must be a whole number",
    ),
    (
        "delay NaN",
        lambda s: enqueue(s, "test.add", {"a": 1}, delay=math.nan),
        ValueError,
        "delay must be a number",
    ),
    (
        "delay infinite",
        lambda s: enqueue(s, "test.add", {"a": 1}, delay=math.inf),
        ValueError,
        "delay must be at most",
    ),
    (
        "delay a string",
        lambda s: enqueue(s, "test.add", {"a": 1}, delay=cast(Any, "5")),
        ValueError,
        "delay must be seconds",
    ),
    (
        "run_at a string",
        lambda s: enqueue(s, "test.add", {"a": 1}, run_at=cast(Any, "2030-01-01")),
        ValueError,
        "run_at must be a datetime",
    ),
    (
        "run_at at the end of time",
        lambda s: enqueue(s, "test.add", {"a": 1}, run_at=datetime.max.replace(tzinfo=UTC)),
        ValueError,
        "run_at must be between",
    ),
    (
        "a 1 MB unique_key",
        lambda s: enqueue(s, "test.add", {"a": 1}, unique_key="x" * (1 << 20)),
        ValueError,
        "unique_key must be at most",
    ),
    (
        "NUL in unique_key",
        lambda s: enqueue(s, "test.add", {"a": 1}, unique_key="a\x00"),
        ValueError,
        "unique_key must not contain a NUL",
    ),
    (
        "a 1 MB queue name",
        lambda s: enqueue(s, "test.add", {"a": 1}, queue="x" * (1 << 20)),
        ValueError,
        "queue must be 1-64",
    ),
    (
        "NUL in queue",
        lambda s: enqueue(s, "test.add", {"a": 1}, queue="a\x00"),
        ValueError,
        "queue must be 1-64",
    ),
    (
        "queue with a comma",
        lambda s: enqueue(s, "test.add", {"a": 1}, queue="a,b"),
        ValueError,
        "queue must be 1-64",
    ),
    (
        "queue with a space",
        lambda s: enqueue(s, "test.add", {"a": 1}, queue=" default"),
        ValueError,
        "queue must be 1-64",
    ),
    (
        "NUL in context",
        lambda s: enqueue(s, "test.add", {"a": 1}, context="a\x00"),
        ValueError,
        "context must not contain a NUL",
    ),
    (
        "a name that is not a string",
        lambda s: enqueue(s, cast(Any, ["test.add"]), {}),
        UnknownJob,
        "must be a string",
    ),
    ("NUL in a name", lambda s: enqueue(s, "test.add\x00", {}), UnknownJob, "no handler"),
    (
        "NUL in a tuple",
        lambda s: enqueue(s, "test.echo", {"data": ("a\x00",)}),
        InvalidPayload,
        "payload['data'][0] contains a NUL character",
    ),
    (
        "a lone surrogate in a tuple",
        lambda s: enqueue(s, "test.echo", {"data": [("\udc80",)]}),
        InvalidPayload,
        "payload['data'][0][0] contains a lone surrogate",
    ),
    (
        "tuples nested past the limit",
        lambda s: enqueue(s, "test.echo", {"data": _tuples(150)}),
        InvalidPayload,
        "is nested deeper than 100 levels",
    ),
    (
        "tuples nested past the stack",
        lambda s: enqueue(s, "test.echo", {"data": _tuples(990)}),
        InvalidPayload,
        "is nested deeper than 100 levels",
    ),
    (
        "run_at before year 1 in UTC",
        lambda s: enqueue(
            s, "test.add", {"a": 1}, run_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
        ),
        ValueError,
        "run_at must be between",
    ),
    (
        "run_at after year 9999 in UTC",
        lambda s: enqueue(
            s,
            "test.add",
            {"a": 1},
            run_at=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
        ),
        ValueError,
        "run_at must be between",
    ),
    (
        "a delay too large for a float",
        lambda s: enqueue(s, "test.add", {"a": 1}, delay=2**1100),
        ValueError,
        "delay must be at most",
    ),
    (
        "a 1 MB cron_name",
        lambda s: enqueue(s, "test.add", {"a": 1}, cron_name="x" * (1 << 20)),
        ValueError,
        "cron_name must be at most",
    ),
    (
        "pause a queue with a comma",
        lambda s: pause_queue(s, "a,b"),
        ValueError,
        "queue must be 1-64",
    ),
]


def _tuples(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = (value,)
    return value


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"n": value}
    return value


def test_a_payload_too_deep_to_encode_is_never_blamed_on_a_limit_it_does_not_exceed() -> None:
    # Python's stack gives out near 1,000 levels, whatever the limit asked for.
    with pytest.raises(InvalidPayload) as refused:
        payloads.to_json(_nest(3_000), "payload", max_depth=10_000, max_bytes=1 << 30)
    assert str(refused.value) == "payload is nested too deeply to encode here (3000 levels)"


@pytest.mark.parametrize(("what", "attempt", "error", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_enqueue_is_refused_naming_the_field_and_the_caller_keeps_its_writes(
    session: Session,
    what: str,
    attempt: Callable[[Session], object],
    error: type[Exception],
    words: str,
) -> None:
    session.add(User(email=f"{len(what)}@example.com", password_hash="x"))
    session.flush()
    with pytest.raises(error, match=re.escape(words)):
        attempt(session)
    session.commit()  # a caller that caught the error and carries on
    assert session.scalar(select(User.email)) == f"{len(what)}@example.com"
    assert session.scalar(select(Job.job_id)) is None


def test_enqueue_many_names_the_bad_job_in_the_batch(session: Session) -> None:
    requests = [JobRequest("test.add", {"a": 1}), JobRequest("test.add", {"a": "x\x00"})]
    with pytest.raises(InvalidPayload, match=r"job 1 of the batch \('test.add'\): .*NUL"):
        enqueue_many(session, requests)
    with pytest.raises(ValueError, match=r"job 0 of the batch .*priority"):
        enqueue_many(session, [JobRequest("test.add", {"a": 1}, priority=2**40)])


@pytest.mark.parametrize("size", [writing.COPY_FROM, 3 * writing.COPY_FROM])
def test_a_bad_job_late_in_a_large_batch_leaves_nothing_written_but_the_callers_own(
    session: Session, size: int
) -> None:
    # A large batch is written while it is still being checked (COPY): the
    # rows before the bad one reach the server, and must not stay.
    session.add(User(email="caller@example.com", password_hash="x"))
    session.flush()
    requests = [JobRequest("test.add", {"a": n}) for n in range(size)]
    requests[-2] = JobRequest("test.add", {"a": "x\x00"})
    with pytest.raises(InvalidPayload, match=rf"job {size - 2} of the batch .*NUL"):
        enqueue_many(session, requests)
    assert enqueue_many(session, requests[:3]) and len(enqueue_many(session, requests[:-2])) > 3
    session.commit()
    assert session.scalar(select(User.email)) == "caller@example.com"
    assert session.scalar(select(func.count()).select_from(Job)) == 3 + size - 2


def test_what_the_database_still_refuses_leaves_the_callers_transaction_alive(
    session: Session, db: Engine
) -> None:
    with db.begin() as conn:  # a rule only the database knows
        conn.execute(text("ALTER TABLE jobs ADD CONSTRAINT no_noop CHECK (name <> 'test.noop')"))
    try:
        session.add(User(email="kept@example.com", password_hash="x"))
        session.flush()
        with pytest.raises(IntegrityError, match="no_noop"):
            enqueue(session, "test.noop")
        with pytest.raises(IntegrityError, match="no_noop"):
            enqueue_many(session, [JobRequest("test.noop")])
        with pytest.raises(IntegrityError, match="no_noop"):  # a batch large enough for COPY
            enqueue_many(session, [JobRequest("test.noop")] * 600)
        enqueue(session, "test.add", {"a": 1})
        session.commit()
        assert session.scalar(select(User.email)) == "kept@example.com"
        assert session.scalars(select(Job.name)).all() == ["test.add"]
    finally:
        session.close()
        with db.begin() as conn:
            conn.execute(text("ALTER TABLE jobs DROP CONSTRAINT no_noop"))


def test_a_delay_of_years_is_fine_and_so_is_a_timedelta(session: Session) -> None:
    job_id = enqueue(session, "test.add", {"a": 1}, delay=timedelta(days=3650))
    assert session.get_one(Job, job_id).run_at.year >= datetime.now(UTC).year + 9


def test_handlers_declare_only_names_and_options_the_queue_can_carry() -> None:
    registry = Registry()
    for bad in (
        {"name": "has space"},
        {"name": ""},
        {"name": "x", "queue": "a,b"},
        {"name": "x", "max_attempts": 0},
        {"name": "x", "timeout": math.nan},
    ):
        with pytest.raises(ValueError):
            registry.job(**bad)(lambda: None)
