"""State left by schedules removed from code: noticed, shown, and forgotten after a while.

A schedule removed from code keeps its `cron_state` row, so that a removal
by mistake can be undone. A cron process that starts without the schedule
marks the row `removed_at` (only at start: a process started before a
schedule was added must not take a new schedule for a removed one). Cron
prunes rows removed longer than CRON_ORPHAN_RETENTION_DAYS, with their
events: cron owns `cron_state`, knows which schedules its code has, and runs
all the time, where the worker's prune job knows no schedules.

A schedule put back after its removal was noticed starts afresh from now
(`app.cron.firing`): the time it was gone is not downtime to make up for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.orm import Session

from app.cron import sql

log = logging.getLogger(__name__)


def mark_removed(session: Session, names: Iterable[str]) -> list[str]:
    """Mark the state of every schedule not in `names` as removed now; return those marked."""
    marked = list(session.execute(sql.MARK_REMOVED, {"names": list(names)}).scalars())
    for name in marked:
        log.warning(
            "schedule %s: has state but no definition here; marked removed "
            "(put it back to start it afresh)",
            name,
        )
    return marked


def prune(session: Session, names: Iterable[str], retention_days: float) -> list[str]:
    """Delete the state and events of schedules removed more than `retention_days` ago."""
    params = {"names": list(names), "retention": retention_days * 86_400}
    pruned = list(session.execute(sql.PRUNE_REMOVED, params).scalars())
    for name in pruned:
        log.info("schedule %s: removed over %g days ago; state pruned", name, retention_days)
    return pruned
