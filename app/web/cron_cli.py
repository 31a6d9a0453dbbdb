"""`flask cron list|run|pause|resume`: cron's schedules from the command line."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app

from app.cron import Schedule, ScheduleError, control, load_schedules, schedules
from app.cron.status import Standing, orphans, run_now, standings
from app.jobs import audit
from app.web.cli_base import DatabaseGroup, shown
from app.web.db import get_session

cron = DatabaseGroup("cron", help="Inspect and run the schedules cron enqueues.")


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
    """Show every schedule: when, policy, last job, last and next occurrence."""
    _load()
    for standing in standings(get_session(), schedules.all()):
        schedule = standing.schedule
        click.echo(
            f"{schedule.name}: {shown(schedule.describe())} -> {schedule.job}\n"
            f"  missed: {schedule.missed}"
            + (", skip if running" if schedule.skip_if_running else "")
            + (f"\n  paused: {_paused(standing)}" if standing.paused_at else "")
            + f"\n  last job: {_last_job(standing)}"
            + f"\n  last: {_when(standing.last_run_at)}"
            + f"\n  next: {_when(standing.next_at)}"
            + (" (due now)" if standing.due else "")
        )
    retention = current_app.config["PILLARS_SETTINGS"].cron_orphan_retention_days
    for orphan in orphans(get_session(), schedules.all(), retention):
        forgotten = "when a cron process notices" if orphan.prune_at is None else ""
        click.echo(
            f"{shown(orphan.name)}: removed from code"
            f" (state kept: {shown(orphan.fingerprint or '?')})\n"
            f"  last: {_when(orphan.last_run_at)}\n"
            f"  forgotten: {_when(orphan.prune_at) if orphan.prune_at else forgotten}"
        )


def _paused(standing: Standing) -> str:
    by = f" by {shown(standing.paused_by)}" if standing.paused_by else ""
    return f"since {_when(standing.paused_at)}{by}"


def _last_job(standing: Standing) -> str:
    job = standing.last_job
    if job is None:
        return "never"
    return f"{job.state} ({job.job_id}, for {_when(job.scheduled_for)})"


def _named(name: str) -> Schedule:
    _load()
    if name not in schedules:
        known = ", ".join(s.name for s in schedules.all()) or "none"
        raise click.UsageError(f"no schedule is named {name!r} (known: {known})")
    return schedules.get(name)


@cron.command("run")
@click.argument("name")
def run_schedule(name: str) -> None:
    """Enqueue schedule NAME's job once, now."""
    schedule, session = _named(name), get_session()
    job_id = run_now(session, schedule)
    audit.record(session, audit.shell_user(), "run", job_ids=[job_id], subject=f"schedule {name}")
    session.commit()
    click.echo(f"enqueued job {job_id} for schedule {name}")


@cron.command("pause")
@click.argument("name")
def pause_schedule(name: str) -> None:
    """Pause schedule NAME: every cron process skips its occurrences until it is resumed."""
    schedule, session = _named(name), get_session()
    if not control.pause(session, schedule, by=_operator()):
        click.echo(f"schedule {name} was paused already")
        return
    audit.record(session, audit.shell_user(), "pause", subject=f"schedule {name}")
    session.commit()
    click.echo(f"schedule {name} paused: its occurrences are skipped until it is resumed")


@cron.command("resume")
@click.argument("name")
def resume_schedule(name: str) -> None:
    """Resume schedule NAME from its next occurrence (nothing skipped is made up)."""
    schedule, session = _named(name), get_session()
    if not control.resume(session, schedule):
        click.echo(f"schedule {name} was not paused")
        return
    audit.record(session, audit.shell_user(), "resume", subject=f"schedule {name}")
    session.commit()
    click.echo(f"schedule {name} resumed: it runs again from its next occurrence")


def _operator() -> str:
    """Who paused, as the dashboard shows it: the account on this machine."""
    return f"{audit.shell_user().name} (flask cron)"
