"""`flask jobs limit` and `flask jobs limits`: set, clear and read queue limits from a shell.

Limits are rows in `queue_limits`, read by every worker at its next cycle,
so they take effect across the fleet at once and survive restarts.
"""

from __future__ import annotations

import click

from app.jobs import flow, holds
from app.web.db import get_session
from app.web.jobs_cli import jobs


def _rate(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return flow.parse_rate(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--rate") from None


@jobs.command("limit")
@click.argument("queue")
@click.option("--concurrency", type=int, help="at most this many jobs of QUEUE run at once")
@click.option("--rate", help="at most this many jobs start per second/minute/hour: 10/s, 600/m")
@click.option("--burst", type=int, help="jobs that may start at once after a lull (default: 1 s)")
@click.option("--clear", is_flag=True, help="lift QUEUE's limits")
def limit(
    queue: str, concurrency: int | None, rate: str | None, burst: int | None, clear: bool
) -> None:
    """Limit QUEUE across every worker, or lift its limits with --clear."""
    session = get_session()
    try:
        if clear:
            if concurrency is not None or rate is not None or burst is not None:
                raise ValueError("--clear lifts every limit; give it alone")
            found = flow.clear_limit(session, queue)
        else:
            flow.set_limit(
                session,
                queue,
                concurrency=concurrency,
                rate=_rate(rate),
                burst=burst,
                set_by="flask jobs limit",
            )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    session.commit()
    if clear:
        click.echo(f"{queue}: limits lifted" if found else f"{queue} had no limits")
    else:
        click.echo(describe(queue, flow.limits(session.connection()).get(queue, {})))


@jobs.command("limits")
def show_limits() -> None:
    """Every queue's limits, and what each holds back now."""
    conn = get_session().connection()
    found = flow.limits(conn)
    held = holds.held_back(conn)
    if not found and not held:
        click.echo("no queue has limits, and no job waits for its key")
    for queue, limits in found.items():
        click.echo(describe(queue, limits))
    for queue, (keyed, limited) in sorted(held.items()):
        click.echo(f"{queue}: {keyed} waiting for their keys, {limited} held by queue limits")


def describe(queue: str, limits: dict[str, object]) -> str:
    """`mail: at most 5 running, 10/s (burst 10)` for one queue's limits."""
    parts = []
    if limits.get("concurrency") is not None:
        parts.append(f"at most {limits['concurrency']} running")
    if limits.get("rate") is not None:
        parts.append(f"{limits['rate']:g}/s (burst {limits['burst']})")
    return f"{queue}: {', '.join(parts) or 'no limits'}"
