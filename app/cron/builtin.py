"""The application's own schedules: add yours here, or beside your jobs in JOB_MODULES."""

from __future__ import annotations

import schedule

from app.cron.schedules import Schedule, add

# Finished jobs pile up; one prune a day keeps the table small. A missed day
# is made up once (`latest`): pruning twice in a row would find nothing new.
add(Schedule("pillars.prune_jobs", schedule.every().day.at("03:15"), "pillars.prune_jobs"))
# Records of what people did go after AUDIT_RETENTION_DAYS (a year by default).
add(Schedule("pillars.prune_audit", schedule.every().day.at("03:30"), "pillars.prune_audit"))

# The site's own clean-up: uploads and reports past their retention, and
# failed sign-ins older than the rate-limit window.
add(Schedule("reports.prune_exports", schedule.every().day.at("03:45"), "reports.prune_exports"))
add(
    Schedule(
        "accounts.prune_login_attempts",
        schedule.every().hour.at(":05"),
        "accounts.prune_login_attempts",
    )
)
