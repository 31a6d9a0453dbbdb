"""/metrics: job duration and queue-wait histograms per job name and queue, from the table."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from tests import factory

DURATION = "pillars_job_duration_recent_seconds_bucket"
WAIT = "pillars_job_queue_wait_recent_seconds_bucket"


def bucket(page: str, series: str, name: str, queue: str, le: str) -> int | None:
    labels = f'{{name="{name}",queue="{queue}",le="{le}"}}'
    found = re.search(rf"^{re.escape(series + labels)} (\S+)$", page, re.M)
    return None if found is None else int(found.group(1))


def finished(db: Engine, name: str, queue: str, ran: float, waited: float, ago: str) -> None:
    job_id = factory.job(db, name, {"a": 1}, queue=queue)
    with db.begin() as conn:
        conn.execute(
            text("""
            UPDATE jobs SET state = 'succeeded',
                finished_at = now() - CAST(:ago AS interval),
                started_at = now() - CAST(:ago AS interval) - make_interval(secs => :ran),
                run_at = now() - CAST(:ago AS interval) - make_interval(secs => :ran + :waited)
            WHERE job_id = :id
            """),
            {"id": job_id, "ago": ago, "ran": ran, "waited": waited},
        )


def test_recent_jobs_fill_cumulative_buckets_per_name_and_queue(
    client: FlaskClient, db: Engine
) -> None:
    finished(db, "test.add", "default", ran=0.03, waited=0.002, ago="1 minute")
    finished(db, "test.add", "default", ran=3.0, waited=20.0, ago="2 minutes")
    finished(db, "test.add", "reports", ran=0.2, waited=0.2, ago="1 minute")
    finished(db, "test.add", "default", ran=0.03, waited=0.0, ago="1 hour")  # out of the window
    page = client.get("/metrics").text
    assert bucket(page, DURATION, "test.add", "default", "0.025") == 0
    assert bucket(page, DURATION, "test.add", "default", "0.05") == 1
    assert bucket(page, DURATION, "test.add", "default", "5.0") == 2
    assert bucket(page, DURATION, "test.add", "default", "+Inf") == 2
    assert bucket(page, WAIT, "test.add", "default", "0.005") == 1
    assert bucket(page, WAIT, "test.add", "default", "30.0") == 2
    assert bucket(page, DURATION, "test.add", "reports", "0.25") == 1
    assert f"# TYPE {DURATION} gauge" in page


def test_no_finished_jobs_means_no_series_and_no_error(client: FlaskClient, db: Engine) -> None:
    page = client.get("/metrics").text
    assert f"# TYPE {WAIT} gauge" in page and f"{WAIT}{{" not in page
