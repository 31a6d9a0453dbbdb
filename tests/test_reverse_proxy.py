"""gunicorn behind nginx with the documented configuration (docs/nginx.conf).

Slow clients hold a gunicorn thread each while they trickle in their headers
or body; behind nginx they hold only an nginx connection, and gunicorn sees
whole requests. Debian's nginx runs as a child of the test with its prefix,
logs and temporary files under tmp_path. Without /usr/sbin/nginx the test is
skipped with a reason; with CI=true it must run (.ci/run installs nginx).
"""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import answers, free_port
from tests.processes import ROOT, start_module, stop, wait_for

pytestmark = pytest.mark.slow

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SNIPPET = ROOT / "docs" / "nginx.conf"
SLOW_CLIENTS = 60
#: The slowloris keeps its connections open this long at most.
ATTACK_SECONDS = 20.0


def nginx() -> str:
    if Path(NGINX).exists():
        return NGINX
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {NGINX} is missing: .ci/run installs Debian's nginx")
    pytest.skip(f"needs nginx at {NGINX}: apt-get install nginx (or set NGINX)")


def nginx_conf(tmp: Path, listen: int, upstream: int) -> Path:
    """A main config around the documented snippet, everything nginx writes under `tmp`."""
    snippet = SNIPPET.read_text()
    for documented, ours in (
        ("listen 80;", f"listen 127.0.0.1:{listen};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
        ("/var/log/nginx/pillars.access.log", str(tmp / "access.log")),
    ):
        assert documented in snippet, f"docs/nginx.conf no longer says {documented!r}"
        snippet = snippet.replace(documented, ours)
    (tmp / "pillars.conf").write_text(snippet)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    include {tmp / "pillars.conf"};
}}
"""
    )
    return conf


@pytest.fixture
def proxied(process_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(nginx URL, gunicorn URL): one gunicorn process with two threads, nginx in front."""
    binary = nginx()
    upstream, listen = free_port(), free_port()
    args = ("-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{upstream}")
    env = {**process_env, "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    web = start_module("gunicorn", env, *args, log=tmp_path / "gunicorn.log")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = nginx_conf(prefix, listen, upstream)
    with (tmp_path / "nginx.log").open("ab") as log:
        proxy = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    front, back = f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{upstream}"
    try:
        wait_for(lambda: answers(f"{back}/healthz"), timeout=60, what="gunicorn to serve")
        wait_for(lambda: answers(f"{front}/healthz"), timeout=30, what="nginx to serve")
        yield front, back
    finally:
        stop(proxy)
        stop(web)


def slowloris(port: int, stop_at: threading.Event) -> None:
    """Open SLOW_CLIENTS connections that send a header or body byte now and then, never all."""
    sockets = []
    try:
        for n in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            start = (
                "GET /healthz HTTP/1.1\r\nHost: a\r\n"
                if n % 2
                else "POST /exports HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
            )
            sock.sendall(start.encode())
            sockets.append(sock)
        deadline = time.monotonic() + ATTACK_SECONDS
        while not stop_at.wait(0.5) and time.monotonic() < deadline:
            for sock in sockets:
                try:
                    sock.sendall(b"X")  # a header line or body byte that never ends
                except OSError:
                    pass  # nginx gave up on this one: fine
    finally:
        for sock in sockets:
            sock.close()


def test_one_time_link_tokens_stay_out_of_nginxs_access_log(
    proxied: tuple[str, str], tmp_path: Path
) -> None:
    front, _ = proxied
    for path, referer in (
        ("/reset/Reset.Token-1a2b3c", None),
        ("/confirm/Confirm.Token-4d5e6f?x=1", None),
        ("/static/style.css", f"{front}/reset/Referer.Token-7a8b9c"),
    ):
        request = urllib.request.Request(front + path, headers={"Referer": referer or ""})
        try:
            urllib.request.urlopen(request, timeout=15).close()
        except urllib.error.HTTPError:
            pass  # a 400 for a forged token is fine: the line is what counts
    log = tmp_path / "nginx" / "access.log"

    def all_three_logged() -> bool:
        """The fixture's /healthz probes log too, so count the three requests by path."""
        text = log.read_text() if log.exists() else ""
        return all(f"GET /{path}" in text for path in ("reset/", "confirm/", "static/style.css"))

    wait_for(all_three_logged, what="the three access lines")
    lines = log.read_text()
    for token in ("Reset.Token-1a2b3c", "Confirm.Token-4d5e6f", "Referer.Token-7a8b9c"):
        assert token not in lines
    assert '"GET /reset/*** HTTP/1.1"' in lines and '"GET /confirm/***?x=1 HTTP/1.1"' in lines
    assert f'"{front}/reset/***"' in lines


def healthz(base: str) -> int:
    with urllib.request.urlopen(f"{base}/healthz", timeout=15) as response:
        return int(response.status)


def test_slow_clients_behind_nginx_do_not_stop_healthz(proxied: tuple[str, str]) -> None:
    front, _ = proxied
    port = int(front.rsplit(":", 1)[1])
    stop_at = threading.Event()
    attack = threading.Thread(target=slowloris, args=(port, stop_at))
    attack.start()
    try:
        time.sleep(2.0)  # every slow connection is open and has sent its first bytes
        assert attack.is_alive()
        assert [healthz(front) for _ in range(10)] == [200] * 10
    finally:
        stop_at.set()
        attack.join(ATTACK_SECONDS + 10)


def test_gunicorn_binds_to_loopback_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    monkeypatch.setenv("PORT", "8123")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "127.0.0.1:8123"
    monkeypatch.setenv("GUNICORN_BIND", "0.0.0.0:9000")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "0.0.0.0:9000"
