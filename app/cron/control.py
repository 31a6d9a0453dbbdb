"""An operator's hand on a schedule: pause it and resume it, from the dashboard or the CLI.

The pause lives in the schedule's `cron_state` row, so every cron process
honours it at its next step. While paused, occurrences that fall due are
skipped and recorded (`firing.skip_paused`); resuming first accounts for
any that fell due since the last step (cron may have been down meanwhile),
so the schedule owes nothing and goes on with its next occurrence.
Both run in the caller's transaction; the caller commits. `now` is the
database's clock unless a test passes its own, as with `firing.catch_up`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.cron import occurrences, sql
from app.cron.firing import skip_paused
from app.cron.schedules import Schedule


def pause(session: Session, schedule: Schedule, by: str, *, now: datetime | None = None) -> bool:
    """Pause `schedule`; False if it was paused already (the first pause stands)."""
    now = now or session.execute(sql.NOW).scalar_one()
    start = {
        "name": schedule.name,
        "last_run_at": occurrences.latest(schedule.grid, now),
        "fingerprint": schedule.fingerprint,
    }
    session.execute(sql.START_STATE, start)  # never seen by cron: it starts from now
    state = session.execute(sql.LOCK_STATE_WAIT, {"name": schedule.name}).one()
    if state.paused_at is not None:
        return False
    session.execute(sql.PAUSE_STATE, {"name": schedule.name, "paused_by": by})
    return True


def resume(session: Session, schedule: Schedule, *, now: datetime | None = None) -> bool:
    """Resume `schedule`; False if it was not paused."""
    now = now or session.execute(sql.NOW).scalar_one()
    state = session.execute(sql.LOCK_STATE_WAIT, {"name": schedule.name}).one_or_none()
    if state is None or state.paused_at is None:
        return False
    if state.fingerprint in (None, schedule.fingerprint):  # else cron restarts it anyway
        skip_paused(session, schedule, state.last_run_at, now, state.paused_by)
    session.execute(sql.RESUME_STATE, {"name": schedule.name})
    return True
