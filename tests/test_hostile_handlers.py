"""A handler that misbehaves in any way ends its job with a reason someone can read.

The same path as the worker's (`drain` runs `observed.attempt`): whatever a
handler raises, returns or reports, the attempt is recorded with what
happened, and a job that succeeded is never run again for want of a result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import JobContext, enqueue
from app.jobs.registry import Registry
from app.jobs.testing import drain


def run(db: Engine, name: str, payload: dict[str, Any] | None = None) -> Any:
    """Enqueue one job, drain, and return its row."""
    with Session(db) as session:
        job_id = enqueue(session, name, payload)
        session.commit()
    drain(db)
    return row(db, job_id)


def first_line(text: str) -> str:
    """A recorded error's words, without the traceback that follows them."""
    return text.split("\n", 1)[0]


def row(db: Engine, job_id: uuid.UUID) -> Any:
    with db.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE job_id = :id"), {"id": job_id}).one()


def test_an_exception_whose_str_raises_is_recorded_by_its_type_and_traceback(db: Engine) -> None:
    job = run(db, "test.unprintable")
    assert job.state == "failed"
    assert job.last_error.startswith("Unprintable: <str() failed")
    assert "raise Unprintable" in job.errors[-1]["traceback"]


@pytest.mark.parametrize("kind", ["KeyboardInterrupt", "GeneratorExit"])
def test_a_base_exception_from_a_handler_is_recorded_with_its_words(db: Engine, kind: str) -> None:
    job = run(db, "test.base_exception", {"kind": kind})
    assert (job.state, first_line(job.last_error)) == ("failed", f"{kind}: why")
    assert "raise {" in job.errors[-1]["traceback"]


@pytest.mark.parametrize("seconds", ["inf", "1e300", "4e9"])
def test_a_retry_asked_for_ages_hence_is_kept_at_the_longest_delay(
    db: Engine, seconds: str
) -> None:
    job = run(db, "test.retry_after", {"seconds": seconds})
    assert (job.state, first_line(job.last_error)) == ("queued", "retry requested: not yet")
    with db.connect() as conn:
        years = conn.execute(
            text("SELECT extract(epoch FROM run_at - now()) / 86400 / 365.25 FROM jobs")
        ).scalar_one()
    assert 99 < years < 101


def test_a_retry_asked_for_in_nan_seconds_comes_at_once(db: Engine) -> None:
    job = run(db, "test.retry_after", {"seconds": "nan"})
    assert (job.state, job.attempts) == ("failed", 2)  # due again at once: drained again
    assert [e["error"] for e in job.errors] == ["retry requested: not yet"] * 2


def test_a_discard_whose_reason_cannot_be_printed_still_discards(db: Engine) -> None:
    job = run(db, "test.discard_unprintable")
    assert job.state == "failed" and job.attempts == 1
    assert first_line(job.last_error) == "discarded: <str() failed: Unprintable>"


def test_a_result_that_cannot_be_encoded_is_dropped_and_the_job_not_run_again(
    db: Engine, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    job = run(db, "test.unlistable_result", {"path": str(ran)})
    assert (job.state, job.result) == ("succeeded", None)
    assert ran.read_text() == "ran\n"


def test_a_coroutine_handed_back_fails_at_once_and_says_it_never_ran(db: Engine) -> None:
    job = run(db, "test.returns_coroutine")
    assert (job.state, job.attempts) == ("failed", 1)
    assert "returned a coroutine" in job.last_error and "never ran" in job.last_error


@pytest.fixture
def scratch() -> Iterator[Registry]:
    yield Registry()


def test_an_async_handler_is_refused_when_it_is_registered(scratch: Registry) -> None:
    async def handler() -> None:
        await asyncio.sleep(0)

    def generator() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="async def"):
        scratch.job("hostile.async")(handler)
    with pytest.raises(TypeError, match="generator"):
        scratch.job("hostile.generator")(generator)
    assert "hostile.async" not in scratch and "hostile.generator" not in scratch


def progress_written(message: object) -> list[tuple[float | None, str | None]]:
    """What a handler's `set_progress(0.5, message)` hands the worker to write."""
    written: list[tuple[float | None, str | None]] = []
    ctx = JobContext(
        uuid.uuid4(),
        "test.noop",
        "default",
        1,
        1,
        None,
        lambda fraction, said: written.append((fraction, said)),
        engine=None,  # type: ignore[arg-type]
        settings=None,  # type: ignore[arg-type]
    )
    ctx.set_progress(0.5, message)  # type: ignore[arg-type]
    return written


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        ("half \x00 way", "half \\x00 way"),
        ("x" * 50_000, "x" * 1_000),
        ("lone \udc80", "lone \\udc80"),
        ("", ""),
    ],
)
def test_a_progress_message_is_written_as_the_table_can_hold_it(message: str, stored: str) -> None:
    assert progress_written(message) == [(0.5, stored)]


@pytest.mark.parametrize("message", [{"a": 1}, 7, b"bytes"])
def test_a_progress_message_that_is_not_text_is_refused_by_its_type(message: object) -> None:
    with pytest.raises(TypeError, match="a progress message must be text"):
        progress_written(message)
