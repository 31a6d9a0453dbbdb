"""`flask jobs ...`: the dashboard's powers from a shell.

Every command prints plain lines a person can read and a script can grep
(`list`, `show` and `stats` print one JSON document with `--json`), and
exits non-zero with a clear message on bad input. Every change is recorded
(`app.jobs.audit`) as done by `user@host` on the command line.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from datetime import datetime
from typing import Any

import click

from app.jobs import InvalidPayload, UnknownJob, audit, enqueue, operations, stats
from app.jobs.queue import pause_queue, resume_queue
from app.jobs.redact import mask
from app.models import JOB_STATES
from app.web.cli_base import DatabaseGroup, shown
from app.web.db import get_session

jobs = DatabaseGroup("jobs", help="See and steer the job queue.")


def _job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a job id (a UUID)") from None


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _plain(value: Any) -> Any:
    """A value as JSON can hold it: times in ISO 8601, ids as strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _echo_json(document: Any) -> None:
    click.echo(json.dumps(document, default=_plain, indent=2, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")


@jobs.command("stats")
@json_option
def show_stats(as_json: bool) -> None:
    """Counts by state and queue, the oldest due job, live processes, stranded jobs.

    Counts in a large table are partly estimates (marked ~): see `app.jobs.counts`.
    """
    view = stats.overview(get_session().connection())
    if as_json:
        _echo_json(
            {
                "counts": view.counts,
                "totals": view.tally.totals,
                "estimated": sorted(view.tally.estimated),
                "analyzed_at": view.tally.analyzed_at,
                "oldest_due_seconds": view.oldest_due_age,
                "paused": view.paused,
                "orphaned": view.orphaned,
                "processes": [
                    {
                        "id": p.worker_id,
                        "kind": p.kind,
                        "hostname": p.hostname,
                        "pid": p.pid,
                        "queues": p.queues,
                        "concurrency": p.concurrency,
                        "heartbeat_age_seconds": p.heartbeat_age,
                        "running": [str(job_id) for job_id, _ in p.running],
                    }
                    for p in view.processes
                ],
            }
        )
        return
    for queue in view.queues or ["(no jobs)"]:
        counts = " ".join(
            f"{s}={'~' if s in view.tally.estimated else ''}{view.counts[s].get(queue, 0)}"
            for s in view.counts
        )
        click.echo(f"{queue}: {counts}" + (" (paused)" if queue in view.paused else ""))
    click.echo(f"oldest due job waits: {_age(view.oldest_due_age)}")
    for process in view.processes:
        click.echo(
            f"{process.kind} {process.worker_id}: heartbeat {_age(process.heartbeat_age)}"
            f" ago, running {len(process.running)}"
        )
    for name, count in view.orphaned.items():
        click.echo(f"warning: {count} queued {name!r} job(s) wait, no live worker knows them")


@jobs.command("list")
@click.option("--state", type=click.Choice(JOB_STATES))
@click.option("--queue")
@click.option("--name")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--after", help="cursor printed at the end of the previous page")
@json_option
def list_jobs(
    state: str | None,
    queue: str | None,
    name: str | None,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """Jobs newest first, a page at a time."""
    try:
        cursor = stats.Cursor.decode(after) if after else None
    except ValueError:
        raise click.BadParameter(
            "not a cursor printed by this command", param_hint="--after"
        ) from None
    rows, following = stats.list_jobs(
        get_session().connection(), stats.JobFilter(state, queue, name), cursor, limit
    )
    if as_json:
        _echo_json(
            {
                "jobs": [
                    {
                        "id": row.job_id,
                        "name": row.name,
                        "queue": row.queue,
                        "state": row.state,
                        "priority": row.priority,
                        "attempts": row.attempts,
                        "max_attempts": row.max_attempts,
                        "created_at": row.created_at,
                        "run_at": row.run_at,
                        "started_at": row.started_at,
                        "finished_at": row.finished_at,
                        "last_error": row.last_error,
                    }
                    for row in rows
                ],
                "next": None if following is None else following.encode(),
            }
        )
        return
    for row in rows:
        click.echo(
            f"{row.job_id} {row.state:<9} {row.queue:<10} {shown(row.name)} "
            f"attempts={row.attempts}/{row.max_attempts} "
            f"created={row.created_at.isoformat(timespec='seconds')}"
        )
    if following is not None:
        click.echo(f"next page: --after {following.encode()}")


@jobs.command("show")
@click.argument("job_id", type=_job_id)
@json_option
def show(job_id: uuid.UUID, as_json: bool) -> None:
    """One job: message, state, timeline, every error and what people did (secrets masked)."""
    conn = get_session().connection()
    row = stats.job_detail(conn, job_id)
    if row is None:
        raise click.ClickException(f"no job {job_id}")
    fields: dict[str, Any] = {k: v for k, v in row._mapping.items() if k != "errors"}
    fields["payload"], fields["result"] = mask(row.payload), mask(row.result)
    actions = [dict(action._mapping) for action in audit.for_job(conn, job_id)]
    if as_json:
        _echo_json({**fields, "errors": row.errors, "actions": actions})
        return
    for key, value in fields.items():
        text = value.isoformat() if isinstance(value, datetime) else value
        if key in ("payload", "result"):
            text = json.dumps(text, default=str)  # escapes every control character
        click.echo(f"{key}: {shown(text)}")
    for error in row.errors:
        said = f"{error.get('attempt')} at {error.get('at')}: {error.get('error')}"
        click.echo(f"--- attempt {shown(said)}")
        if error.get("traceback"):  # indented: no line of it passes for the command's own
            click.echo(textwrap.indent(shown(str(error["traceback"]).rstrip(), lines=True), "  "))
    for action in actions:
        what = " · ".join(filter(None, [action["action"], action["subject"], action["detail"]]))
        by = f"{action['actor']} ({action['via']})"
        click.echo(f"=== {action['at'].isoformat()} {shown(by)}: {shown(what)}")


@jobs.command("retry")
@click.argument("job_id", type=_job_id, required=False)
@click.option("--failed", is_flag=True, help="every failed job matching --queue/--name")
@click.option("--queue")
@click.option("--name")
def retry(job_id: uuid.UUID | None, failed: bool, queue: str | None, name: str | None) -> None:
    """Queue a failed or cancelled job again (or all failed ones with --failed)."""
    session = get_session()
    if failed == (job_id is not None):
        raise click.UsageError("give a JOB_ID or --failed")
    by = audit.shell_user()
    if job_id is None:
        count = operations.retry_failed(session, queue=queue, name=name, by=by)
        click.echo(f"retried {count} job(s)")
    elif not operations.retry(session, job_id, by=by):
        raise click.ClickException(f"job {job_id} is not failed or cancelled (or does not exist)")
    else:
        click.echo(f"retried {job_id}")
    session.commit()


@jobs.command("cancel")
@click.argument("job_id", type=_job_id)
def cancel(job_id: uuid.UUID) -> None:
    """Cancel a queued or running job (a running handler finishes; its outcome is dropped)."""
    session = get_session()
    if not operations.cancel(session, job_id, by=audit.shell_user()):
        raise click.ClickException(f"job {job_id} is not queued or running (or does not exist)")
    session.commit()
    click.echo(f"cancelled {job_id}")


@jobs.command("delete")
@click.argument("job_id", type=_job_id, required=False)
@click.option("--failed", is_flag=True, help="every failed job matching --queue/--name")
@click.option("--queue")
@click.option("--name")
def delete(job_id: uuid.UUID | None, failed: bool, queue: str | None, name: str | None) -> None:
    """Delete a job that is not running (or all failed ones with --failed)."""
    session = get_session()
    if failed == (job_id is not None):
        raise click.UsageError("give a JOB_ID or --failed")
    by = audit.shell_user()
    if job_id is None:
        count = operations.delete_failed(session, queue=queue, name=name, by=by)
        click.echo(f"deleted {count} job(s)")
    elif not operations.delete(session, job_id, by=by):
        raise click.ClickException(f"job {job_id} is running (cancel it first) or does not exist")
    else:
        click.echo(f"deleted {job_id}")
    session.commit()


@jobs.command("enqueue")
@click.argument("name")
@click.option("--payload", default="{}", show_default=True, help="the payload, a JSON object")
@click.option("--queue")
@click.option("--priority", type=int)
@click.option(
    "--run-at",
    "run_at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"]),
    help="ISO time with offset, e.g. 2030-01-01T06:00:00+00:00",
)
def enqueue_job(
    name: str, payload: str, queue: str | None, priority: int | None, run_at: datetime | None
) -> None:
    """Enqueue job NAME and print the new job's id."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise click.BadParameter(f"not JSON: {reason}", param_hint="--payload") from None
    session = get_session()
    try:
        job_id = enqueue(
            session,
            name,
            document,
            queue=queue,
            priority=priority,
            run_at=run_at,
            context="flask jobs enqueue",
        )
    except (UnknownJob, InvalidPayload, ValueError) as error:
        raise click.ClickException(str(error)) from None
    audit.record(session, audit.shell_user(), "enqueue", job_ids=[job_id])
    session.commit()
    click.echo(str(job_id))


@jobs.command("pause")
@click.argument("queue")
def pause(queue: str) -> None:
    """Stop every worker from claiming from QUEUE (running jobs finish)."""
    session = get_session()
    try:
        paused = pause_queue(session, queue, paused_by="flask jobs pause")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="QUEUE") from None
    if not paused:
        click.echo(f"{queue} was paused already")
        return
    audit.record(session, audit.shell_user(), "pause", subject=f"queue {queue!r}")
    session.commit()
    click.echo(f"paused {queue}")


@jobs.command("resume")
@click.argument("queue")
def resume(queue: str) -> None:
    """Let workers claim from QUEUE again."""
    session = get_session()
    try:
        resumed = resume_queue(session, queue)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="QUEUE") from None
    if not resumed:
        click.echo(f"{queue} was not paused")
        return
    audit.record(session, audit.shell_user(), "resume", subject=f"queue {queue!r}")
    session.commit()
    click.echo(f"resumed {queue}")


@jobs.command("alive")
@click.option("--kind", type=click.Choice(["worker", "cron"]), default="worker", show_default=True)
@click.option(
    "--within",
    type=float,
    default=30.0,
    show_default=True,
    help="seconds since the last heartbeat that still count as alive",
)
def alive(kind: str, within: float) -> None:
    """Exit 0 if a KIND process beat within WITHIN seconds, else 1: a platform health probe."""
    processes = stats.live_processes(get_session().connection())
    fresh = [p for p in processes if p.kind == kind and p.heartbeat_age <= within]
    click.echo(f"{len(fresh)} live {kind} process(es)")
    if not fresh:
        sys.exit(1)
