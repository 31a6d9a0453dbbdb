"""What the web benchmark stands on: a database, gunicorn, a signed-in user, background jobs."""

from __future__ import annotations

import http.cookiejar
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many, load_job_modules
from app.models import Export, User
from bench.web_wrk import post_script

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "pillarsbenchboundary"
#: The measured upload: small, like a person's spreadsheet, so the request stays cheap.
SMALL_CSV = "city,population,area\n" + "".join(f"c{n},{n * 13},{n % 7}\n" for n in range(100))


def database(tmp: Path) -> tuple[str, Any]:
    """A fresh, migrated database on an embedded server (kept alive by the returned handle)."""
    from dev import embedded_server, ensure_database

    server = embedded_server(tmp / "pg", cleanup="delete")
    url = ensure_database(server, "bench_web").replace("postgresql://", "postgresql+psycopg://")
    os.environ["DATABASE_URL"] = url
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    load_job_modules(["bench.webjobs"])
    return url, server


def environment(url: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "JOB_MODULES": "bench.webjobs",
        "MAIL_DIR": str(tmp / "mail"),
        "SECRET_KEY": secrets.token_urlsafe(32),
        # The benchmark is one user uploading as fast as wrk can: no rate limit may refuse it.
        "UPLOAD_RATE_PER_USER": "1000000000/s",
        "UPLOAD_RATE_PER_ADDRESS": "1000000000/s",
        "GUNICORN_ACCESSLOG": "",
        "LOG_LEVEL": "WARNING",
    }


@contextmanager
def gunicorn(env: dict[str, str], tmp: Path) -> Iterator[str]:
    """gunicorn with the production config on a free loopback port; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    with (tmp / "gunicorn.log").open("ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *args], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(60)


def upload_script(base: str, tmp: Path) -> Path:
    """Sign up a user and write the wrk script that uploads SMALL_CSV as them."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def token(path: str) -> str:
        html = opener.open(base + path).read().decode()
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    form = {"email": "bench@example.com", "password": "bench password", "csrf_token": ""}
    form["csrf_token"] = token("/signup")
    opener.open(base + "/signup", urllib.parse.urlencode(form).encode()).close()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    csrf = token("/exports")
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n',
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{SMALL_CSV}\r\n--{BOUNDARY}--\r\n",
    ]
    body = "".join(parts).encode()
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return post_script(tmp / "upload.lua", body, content_type, cookie)


def queue_waits(engine: Engine, count: int, seconds: float) -> None:
    with Session(engine) as session:
        enqueue_many(session, [JobRequest("bench.wait", {"seconds": seconds})] * count)
        session.commit()


def queue_reports(engine: Engine, count: int, rows: int) -> None:
    """Queue `count` real report builds of a `rows`-row CSV on the `bench` queue."""
    data = "a,b,c,d,e,f\n" + "".join(
        f"{n},{n * 7 % 1000},{n % 13}.5,x{n % 50},{n * n % 997},y{n % 7}\n" for n in range(rows)
    )
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.email == "bench@example.com"))
        assert user_id is not None
        for _ in range(count):
            export = Export(
                user_id=user_id,
                filename="big.csv",
                row_count=rows,
                column_count=6,
                upload=data.encode(),
            )
            session.add(export)
            session.flush()
            enqueue(session, "reports.build", {"export_id": export.id}, queue="bench")
        session.commit()


def clear_background(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE queue = 'bench'"))


def finished_background(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM jobs WHERE queue = 'bench' AND state = 'succeeded'"
        return int(conn.execute(text(query)).scalar_one())


def wait_until_busy(engine: Engine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM jobs WHERE queue = 'bench' AND state = 'running'")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() > 0:
                time.sleep(1.0)  # let every thread pick up work
                return
        time.sleep(0.1)
    raise RuntimeError("the worker never started the background jobs")
