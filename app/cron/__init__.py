"""Cron: enqueue jobs on schedules defined in code, in `cron.py`.

Import from here; the submodules are the implementation. Never imports Flask.
"""

from app.cron.schedules import Policy, Schedule, ScheduleError, add, load_schedules, schedules

__all__ = ["Policy", "Schedule", "ScheduleError", "add", "load_schedules", "schedules"]
