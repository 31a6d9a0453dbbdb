"""Schedules the cron processes under test run (JOB_MODULES=tests.jobs,tests.schedules).

Counted by `cron_name`, so the app's own schedules never disturb a test.
"""

from __future__ import annotations

import os

import schedule

from app.cron import Schedule, add

#: Tests choose the minute so that no hourly occurrence falls while they run.
HOURLY_AT = os.environ.get("TEST_HOURLY_AT", ":00")

for policy in ("latest", "all", "skip"):
    add(
        Schedule(
            f"test.hourly.{policy}",
            schedule.every().hour.at(HOURLY_AT),
            "test.noop",
            missed=policy,
        )
    )

# `all`: every occurrence must be enqueued, even across a crash or a lost database.
add(Schedule("test.every_second", schedule.every().second, "test.noop", missed="all"))
