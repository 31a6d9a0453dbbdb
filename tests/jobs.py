"""Handlers the tests enqueue; workers under test load them through JOB_MODULES."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from app.jobs import Discard, JobContext, Retry, job


@job("test.noop")
def noop() -> None:
    """Does nothing: measures the queue, not the work."""


@job("test.add")
def add(a: int, b: int = 0) -> int:
    return a + b


@job("test.record", max_attempts=3)
def record(path: str, marker: str, sleep: float = 0.0) -> None:
    """Append `marker` to `path` after `sleep` seconds: counts executions across processes."""
    time.sleep(sleep)
    with Path(path).open("a") as file:
        file.write(f"{marker} {os.getpid()}\n")


@job("test.fail", max_attempts=3)
def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


@job("test.retry_later")
def retry_later(delay: float = 30.0) -> None:
    raise Retry(delay, "not yet")


@job("test.discard")
def discard() -> None:
    raise Discard("payload refers to a deleted user")


@job("test.give_up", max_attempts=2)
def give_up(api_token: str, how: str) -> None:
    """Ask for a retry, or discard, with a reason that quotes the secret it was given."""
    reason = f"the service refused token {api_token}"
    raise Retry(0.0, reason) if how == "retry" else Discard(reason)


@job("test.sleep", timeout=None)
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@job("test.spin", timeout=0.5, max_attempts=1)
def spin() -> None:
    """Busy Python loop that only a timeout interrupt can stop."""
    while True:
        sum(range(1000))


@job("test.progress")
def progress(steps: int, ctx: JobContext) -> str:
    for step in range(steps):
        ctx.set_progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return f"attempt {ctx.attempt}"


@job("test.crash", max_attempts=2)
def crash() -> None:
    """Kill the whole worker process, like a segfault in a C extension would."""
    os.kill(os.getpid(), 9)


@job("test.login", max_attempts=1)
def login(user: str, password: str) -> None:
    raise PermissionError(f"login refused for {user} with password {password!r}")


@job("test.occurrence")
def occurrence(path: str, ctx: JobContext) -> None:
    """Append the cron occurrence the job stands for: what a daily digest would cover."""
    with Path(path).open("a") as file:
        file.write(f"{ctx.scheduled_for.isoformat() if ctx.scheduled_for else None}\n")


@job("test.nul_result")
def nul_result() -> dict[str, str]:
    """Returns what jsonb cannot store: the outcome must still be saved."""
    return {"text": "a\x00b"}


@job("test.nul_error", max_attempts=1)
def nul_error() -> None:
    raise RuntimeError("bad \x00 byte and a lone \udc80 surrogate")


@job("test.block", timeout=0.5, max_attempts=1)
def block(seconds: float = 3600) -> None:
    """Blocked inside C code: a timeout interrupt cannot land until it returns."""
    time.sleep(seconds)


@job("test.echo")
def echo(data: Any = None) -> Any:
    return data


@job("test.flaky", max_attempts=3)
def flaky(path: str, marker: str) -> None:
    """Fails its first run (retried at once), then succeeds; every run is recorded."""
    runs = Path(path)
    with runs.open("a") as file:
        file.write(f"{marker}\n")
    if runs.read_text().splitlines().count(marker) == 1:
        raise Retry(0, "first run fails")


@job("test.flow_run", max_attempts=5)
def flow_run(table: str, seconds: float, ctx: JobContext) -> None:
    """Record this execution (its job, process, start and end on the database clock)
    in `table`."""
    from sqlalchemy import text

    from app.db import get_engine

    with get_engine().begin() as conn:
        run = conn.execute(
            text(
                f"INSERT INTO {table} (job_id, pid, started)"
                " VALUES (:job_id, :pid, clock_timestamp()) RETURNING id"
            ),
            {"job_id": ctx.job_id, "pid": os.getpid()},
        ).scalar_one()
    time.sleep(seconds)
    with get_engine().begin() as conn:
        conn.execute(
            text(f"UPDATE {table} SET ended = clock_timestamp() WHERE id = :id"), {"id": run}
        )


@job("test.per_user", concurrency_key="user:{user_id}", concurrency_limit=2)
def per_user(user_id: int) -> None:
    """Keyed by its payload: at most two of one user's jobs run at once."""


class Unprintable(Exception):
    """An exception whose words cannot be had: str() raises."""

    def __str__(self) -> str:
        raise ValueError("no words")


@job("test.unprintable", max_attempts=1)
def unprintable() -> None:
    raise Unprintable("the reason")


@job("test.base_exception", max_attempts=1)
def base_exception(kind: str) -> None:
    """What `except Exception` does not catch, raised by the handler itself."""
    raise {"KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}[kind]("why")


@job("test.retry_after", max_attempts=2)
def retry_after(seconds: str) -> None:
    """Retry(float(seconds)): 'inf' or '1e300' asks for a retry never or ages hence."""
    raise Retry(float(seconds), "not yet")


@job("test.discard_unprintable")
def discard_unprintable() -> None:
    raise Discard(Unprintable())  # type: ignore[arg-type]


class Unlistable(dict[str, int]):
    """A result whose encoding fails with an error of its own."""

    def items(self) -> Any:
        raise RuntimeError("cannot list")


@job("test.unlistable_result", max_attempts=3)
def unlistable_result(path: str) -> dict[str, int]:
    with Path(path).open("a") as file:
        file.write("ran\n")
    return Unlistable(a=1)


@job("test.returns_coroutine", max_attempts=3)
def returns_coroutine() -> Any:
    """A plain def handing back an un-awaited coroutine: its body would never run."""

    async def later() -> None:
        return None

    return later()


@job("test.fork", max_attempts=1)
def fork(path: str) -> str:
    """Fork, and return in both processes: the child writes its pid first."""
    pid = os.fork()
    if pid == 0:
        Path(path).write_text(str(os.getpid()))
        return "child"
    return "parent"


@job("test.terminal", max_attempts=1)
def terminal() -> None:
    """Fails with words that would recolour a terminal and forge a line of output."""
    raise ValueError("bad input \x1b[2J\x1b[31mred\nstate: succeeded")
