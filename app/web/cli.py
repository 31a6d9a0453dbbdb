"""`flask cron list` and `flask cron run NAME`: cron's schedules from the command line."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from app.cron import ScheduleError, load_schedules, schedules
from app.cron.status import orphans, run_now, standings
from app.web.db import get_session

cron = AppGroup("cron", help="Inspect and run the schedules cron enqueues.")


def _load() -> None:
    """Load the schedules as cron would; a bad definition is one line, not a traceback."""
    try:
        load_schedules(current_app.config["PILLARS_SETTINGS"].job_modules)
    except ScheduleError as error:
        raise click.ClickException(str(error)) from None


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


@cron.command("list")
def list_schedules() -> None:
    """Show every schedule: when, policy, last occurrence enqueued, next occurrence."""
    _load()
    for standing in standings(get_session(), schedules.all()):
        schedule = standing.schedule
        click.echo(
            f"{schedule.name}: {schedule.describe()} -> {schedule.job}\n"
            f"  missed: {schedule.missed}"
            + (", skip if running" if schedule.skip_if_running else "")
            + f"\n  last: {_when(standing.last_run_at)}"
            + f"\n  next: {_when(standing.next_at)}"
            + (" (due now)" if standing.due else "")
        )
    retention = current_app.config["PILLARS_SETTINGS"].cron_orphan_retention_days
    for orphan in orphans(get_session(), schedules.all(), retention):
        forgotten = "when a cron process notices" if orphan.prune_at is None else ""
        click.echo(
            f"{orphan.name}: removed from code (state kept: {orphan.fingerprint or '?'})\n"
            f"  last: {_when(orphan.last_run_at)}\n"
            f"  forgotten: {_when(orphan.prune_at) if orphan.prune_at else forgotten}"
        )


@cron.command("run")
@click.argument("name")
def run_schedule(name: str) -> None:
    """Enqueue schedule NAME's job once, now."""
    _load()
    if name not in schedules:
        known = ", ".join(s.name for s in schedules.all()) or "none"
        raise click.UsageError(f"no schedule is named {name!r} (known: {known})")
    session = get_session()
    job_id = run_now(session, schedules.get(name))
    session.commit()
    click.echo(f"enqueued job {job_id} for schedule {name}")
