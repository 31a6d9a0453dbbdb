"""The dashboard with a million jobs: `.venv/bin/python -m bench.admin [--rows N] [--runs N]`.

Fills a scratch database (an embedded PostgreSQL, deleted at the end) with
`--rows` jobs in one INSERT ... SELECT generate_series: one a second over
the past days, 90 % succeeded, 5 % failed, 1 % cancelled, 4 % queued and a
few running, in four queues under twenty names (and a rare one, three jobs in
50,000), each payload naming one of
a thousand reports and one of four regions. Then VACUUM ANALYZE, as
autovacuum would leave a settled table, and time each dashboard page
through Flask's test client (the whole request: routing, queries,
template), printing the median of `--runs` after one warm-up.

Beside the pages, the same run times the exact `GROUP BY state, queue` the
overview used to run on every view, the baseline its estimates replace.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from app.accounts import fingerprint
from app.web import create_app

ROOT = Path(__file__).resolve().parent.parent

FILL = text("""
INSERT INTO jobs (job_id, name, queue, state, payload, created_at, run_at, started_at,
                  finished_at, attempts, max_attempts, locked_by, heartbeat_at, last_error, errors)
SELECT gen_random_uuid(),
       CASE WHEN g % 50000 IN (25, 91, 96) THEN 'bench.rare' ELSE 'bench.job' || (g % 20) END,
       (ARRAY['default', 'reports', 'mail', 'bulk'])[1 + g % 4],
       s.state,
       jsonb_build_object('n', g, 'report_id', g % 1000,
                          'region', (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4],
                          'api_key', 'k-' || g),
       t.at, t.at,
       CASE WHEN s.state <> 'queued' THEN t.at + interval '1 second' END,
       CASE WHEN s.state IN ('succeeded', 'failed', 'cancelled')
            THEN t.at + make_interval(secs => 2 + g % 30) END,
       CASE WHEN s.state = 'queued' THEN 0 WHEN s.state = 'failed' THEN 3 ELSE 1 END, 3,
       CASE WHEN s.state = 'running' THEN 'bench-worker-1' END,
       CASE WHEN s.state = 'running' THEN now() END,
       CASE WHEN s.state = 'failed' THEN 'RuntimeError: upstream said 503' END,
       CASE WHEN s.state = 'failed' THEN jsonb_build_array(jsonb_build_object(
           'attempt', 3, 'at', t.at, 'worker', 'bench-worker-1',
           'error', 'RuntimeError: upstream said 503',
           'traceback', repeat('  File "app/handlers.py", line 42, in call' || chr(10), 8)))
            ELSE '[]'::jsonb END
FROM generate_series(1, :rows) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => :rows - g) AS at) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN g % 50000 = 0 THEN 'running'
    WHEN g % 100 < 90 THEN 'succeeded'
    WHEN g % 100 < 95 THEN 'failed'
    WHEN g % 100 = 95 THEN 'cancelled'
    ELSE 'queued' END AS state) AS s
""")

# Two workers that know 18 of the 20 names (so the overview warns about those
# two and bench.rare),
# and one cron process.
PROCESSES = text("""
INSERT INTO workers (worker_id, kind, hostname, pid, concurrency, job_names)
SELECT 'bench-worker-' || n, 'worker', 'bench', n, 10,
       ARRAY(SELECT 'bench.job' || k FROM generate_series(0, 17) AS k)
FROM generate_series(1, 2) AS n
UNION ALL SELECT 'bench-cron-1', 'cron', 'bench', 3, 1, '{}'
""")


def database(tmp: Path) -> Any:
    """A fresh, migrated database on an embedded server; DATABASE_URL points at it."""
    from dev import embedded_server, ensure_database

    server = embedded_server(tmp / "pg", cleanup="delete")
    url = ensure_database(server, "bench_admin").replace("postgresql://", "postgresql+psycopg://")
    os.environ["DATABASE_URL"] = url
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    return server


def fill(engine: Engine, rows: int) -> None:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(FILL, {"rows": rows})
        conn.execute(PROCESSES)
        conn.execute(
            text(
                "INSERT INTO users (email, password_hash, is_admin) VALUES"
                " ('bench@example.com', 'bench', true)"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE jobs"))
    print(f"filled {rows:,} jobs and vacuumed in {time.perf_counter() - started:.0f} s")


def cursor_at(engine: Engine, where: str, offset: int) -> str:
    """The cursor a reader paging newest-first would hold after `offset` rows."""
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT job_id FROM jobs WHERE {where} ORDER BY job_id DESC OFFSET :n LIMIT 1"),
            {"n": offset - 1},
        ).one()
    return quote(str(row.job_id))


def pages(engine: Engine, rows: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        failed = conn.execute(text("SELECT job_id FROM jobs WHERE state = 'failed' LIMIT 1"))
        detail = failed.scalar_one()
    half, deep = rows // 2, rows // 40
    failed_after = cursor_at(engine, "state = 'failed'", deep)
    named_after = cursor_at(engine, "name = 'bench.job12'", deep)
    report_after = cursor_at(engine, "payload @> '{\"report_id\": 7}'", 500)
    return [
        ("overview", "/admin/"),
        ("jobs, first page", "/admin/jobs"),
        (f"jobs, page after row {half:,}", f"/admin/jobs?after={cursor_at(engine, 'true', half)}"),
        ("state=failed, first page", "/admin/jobs?state=failed"),
        (f"state=failed, after row {deep:,}", f"/admin/jobs?state=failed&after={failed_after}"),
        ("name=bench.job12, first page", "/admin/jobs?name=bench.job12"),
        (
            f"name=bench.job12, after row {deep:,}",
            f"/admin/jobs?name=bench.job12&after={named_after}",
        ),
        ("state=failed & name=bench.job12", "/admin/jobs?state=failed&name=bench.job12"),
        ("name=bench.rare (3 in 50,000)", "/admin/jobs?name=bench.rare"),
        ("state=queued & name=bench.rare", "/admin/jobs?state=queued&name=bench.rare"),
        ("queue=reports, first page", "/admin/jobs?queue=reports"),
        ("state=queued, first page", "/admin/jobs?state=queued"),
        ("state=running (rare)", "/admin/jobs?state=running"),
        ("one failed job's page", f"/admin/jobs/{detail}"),
        ("cron", "/admin/cron"),
        (
            "payload {report_id: 7} (1,000 match)",
            "/admin/jobs?payload=" + quote('{"report_id": 7}'),
        ),
        (
            "  and its page after row 500",
            "/admin/jobs?payload=" + quote('{"report_id": 7}') + f"&after={report_after}",
        ),
        ("payload {region: north} (1 in 4)", "/admin/jobs?payload=" + quote('{"region": "north"}')),
        ("payload {n: <one job>} (1 match)", "/admin/jobs?payload=" + quote(f'{{"n": {half}}}')),
        ("payload {report_id: 5000} (none)", "/admin/jobs?payload=" + quote('{"report_id": 5000}')),
        (
            "payload {report_id: 7} & name",
            "/admin/jobs?name=bench.job7&payload=" + quote('{"report_id": 7}'),
        ),
    ]


def measure(client: FlaskClient, path: str, runs: int) -> tuple[list[float], int]:
    """Milliseconds per request after a warm-up, and how many job links the page showed."""
    timings, links = [], 0
    for _ in range(runs + 1):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        links = response.text.count('href="/admin/jobs/')
    return timings[1:], links


def exact_counts(engine: Engine, runs: int) -> list[float]:
    """The overview's count before: every row, grouped by state and queue."""
    timings = []
    with engine.connect() as conn:
        for _ in range(runs + 1):
            started = time.perf_counter()
            conn.execute(
                text("SELECT state, queue, count(*) FROM jobs GROUP BY state, queue")
            ).all()
            timings.append((time.perf_counter() - started) * 1000)
    return timings[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description="Admin dashboard pages over a large jobs table")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pillars-bench-admin-") as tmp:
        server = database(Path(tmp))
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
        app = create_app()
        engine: Engine = app.extensions["pillars_engine"]
        fill(engine, args.rows)
        client = app.test_client()
        with client.session_transaction() as session:
            session["user_id"] = 1
            session["auth"] = fingerprint("bench")
            session["generation"] = 0
            session["since"] = session["seen"] = int(time.time())
        print(f"{'page':<40} {'median ms':>10} {'min':>8} {'max':>8} {'job links':>10}")
        for label, path in pages(engine, args.rows):
            timings, links = measure(client, path, args.runs)
            print(
                f"{label:<40} {statistics.median(timings):>10.1f} {min(timings):>8.1f}"
                f" {max(timings):>8.1f} {links:>10}",
                flush=True,
            )
        before = exact_counts(engine, args.runs)
        print(
            f"{'baseline: exact GROUP BY (query only)':<40} {statistics.median(before):>10.1f}"
            f" {min(before):>8.1f} {max(before):>8.1f}"
        )
        print(f"({args.runs} timed runs per page after one warm-up)")
        engine.dispose()
        server.cleanup()  # before its folder goes
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
