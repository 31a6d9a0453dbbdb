"""Gunicorn settings for the web pillar in production: `gunicorn -c gunicorn.conf.py`.

Each worker process builds its own app (and database pool) after the fork:
connections must never be shared across processes. Requests only validate,
write and enqueue, so a few threads per process keep the database pool busy
without holding a CPU core for long.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any

wsgi_app = "app.web:create_app()"
#: Loopback unless told otherwise: gunicorn belongs behind a buffering reverse proxy
#: (docs/nginx.conf). In a container, or with the proxy on another machine, set
#: GUNICORN_BIND=0.0.0.0:8000.
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
#: Each thread gets a connection of its own: the app pools WEB_DB_POOL connections per
#: process, WEB_THREADS unless set (docs/operations.md, Sizing).
threads = int(os.environ.get("WEB_THREADS", "4"))
preload_app = False
timeout = 30
graceful_timeout = 25
keepalive = 5
#: Recycle workers now and then, staggered, so slow leaks never add up.
max_requests = 5_000
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
#: Reset links carry a token in their path: it never reaches a log line.
logger_class = "app.web.accesslog.MaskingLogger"
#: The app (Werkzeug's ProxyFix) believes X-Forwarded-For/-Proto from TRUSTED_PROXY_HOPS
#: proxies; with none, gunicorn must not believe them from anyone either.
if os.environ.get("TRUSTED_PROXY_HOPS", "0").strip() in ("", "0"):
    forwarded_allow_ips = ""


def on_starting(server: Any) -> None:
    """Refuse to start, in one line, without a proper SECRET_KEY or with a LOG_LEVEL that
    names no level (before any worker boots);
    say how many database connections the processes may hold together."""
    from app import logs
    from app.config import ConfigError, secret_key_problem

    problem = secret_key_problem(os.environ.get("SECRET_KEY", ""))
    try:
        logs.level()
    except ConfigError as error:
        problem = problem or str(error)
    if problem:
        sys.exit(f"gunicorn: {problem}")
    pool = os.environ.get("WEB_DB_POOL", "").strip() or str(threads)
    server.log.info(
        "%d processes x %d threads, WEB_DB_POOL %s each: up to %s database connections",
        workers,
        threads,
        pool,
        workers * int(pool) if pool.isdigit() else "?",
    )


def post_fork(server: Any, worker: Any) -> None:
    """The app's own lines (and any job enqueued) in LOG_FORMAT, with the request id."""
    from app import logs

    logs.configure("web")
