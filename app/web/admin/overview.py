"""The overview: what the queue holds, how fast it moves, who works on it, how the table fares."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

from app.config import Settings
from app.jobs import audit, holds, stats
from app.web.admin import chart
from app.web.db import get_session

bp = Blueprint("overview", __name__)

#: Autovacuum starts at 20 % dead rows (its default scale factor); well past that,
#: with enough rows to matter, vacuum is not keeping up: most often a long transaction.
DEAD_SHARE_WARNING = 0.2
DEAD_ROWS_WARNING = 10_000
#: A transaction open this long holds back vacuum on every table, the jobs table first.
TRANSACTION_AGE_WARNING = 300.0
#: Actions by people listed on the overview.
RECENT_ACTIONS = 10
#: Heartbeats this many intervals late mean a process is frozen, cut off or dying.
LATE_HEARTBEATS = 3


@dataclass(frozen=True)
class Health:
    vacuum_behind: bool
    long_transaction: bool
    #: a heartbeat older than this many seconds is late
    late_after: float


def health(overview: stats.Overview, settings: Settings) -> Health:
    dead = overview.dead_tuples
    xact = overview.oldest_transaction_age
    return Health(
        vacuum_behind=dead > max(DEAD_ROWS_WARNING, DEAD_SHARE_WARNING * overview.live_tuples),
        long_transaction=xact is not None and xact > TRANSACTION_AGE_WARNING,
        late_after=LATE_HEARTBEATS * settings.heartbeat_interval,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    """One page to answer "is the queue healthy?" at a glance."""
    conn = get_session().connection()
    data = stats.overview(conn)
    return render_template(
        "admin/overview.html",
        overview=data,
        orphans_counted=stats.ORPHANS_COUNTED,
        recent=audit.recent(conn, RECENT_ACTIONS),
        chart=chart.per_minute(data.per_minute),
        health=health(data, current_app.config["PILLARS_SETTINGS"]),
        queues=sorted({*data.queues, *data.paused}),
        limits=holds.queue_limits(conn),
        held=holds.held_back(conn),
        keys=holds.busiest_keys(conn),
    )
