"""A real PgBouncer (Debian's package) in front of a test server, for the pooler tests.

It runs as a child of the test, its configuration, log and socket under a
folder of its own; as root it runs as an unprivileged user (PgBouncer
refuses root). Without the binary the tests that need it are skipped with
a reason; with CI=true they must run (.ci/run installs the package).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.browser import free_port
from tests.processes import wait_for

PGBOUNCER = os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer")
#: The user PgBouncer runs as when the tests run as root (the embedded server's too).
USER = "embedded_postgres"


def pgbouncer() -> str:
    """The PgBouncer binary; skips the test without one, fails it under CI=true."""
    if Path(PGBOUNCER).exists():
        return PGBOUNCER
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {PGBOUNCER} is missing: .ci/run installs Debian's pgbouncer")
    pytest.skip(f"needs PgBouncer at {PGBOUNCER}: apt-get install pgbouncer (or set PGBOUNCER)")


class PgBouncer:
    """PgBouncer on its own loopback port, pooling every database of `upstream`'s server
    for `upstream`'s user, who must be let in without a password (as the tests are)."""

    def __init__(
        self,
        upstream: str,
        *,
        pool_mode: str = "transaction",
        pool_size: int = 20,
        max_client_conn: int = 1000,
    ) -> None:
        self.binary = pgbouncer()
        self.root = Path(tempfile.mkdtemp(prefix="pillars-pgbouncer-"))
        self.port = free_port()
        self.user = USER if os.geteuid() == 0 else None
        with psycopg.connect(upstream.replace("postgresql+psycopg://", "postgresql://")) as conn:
            host, port, self.login = conn.info.host, conn.info.port, conn.info.user
        self.config = self.root / "pgbouncer.ini"
        (self.root / "users.txt").write_text(f'"{self.login}" ""\n')
        self.config.write_text(f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.root / "users.txt"}
admin_users = {self.login}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
logfile = {self.root / "pgbouncer.log"}
""")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            self.root.chmod(0o755)
            for path in [self.root, *self.root.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(
            [self.binary, str(self.config)],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, timeout=20, what="PgBouncer to listen")
        return self

    def stop(self) -> None:
        """SIGTERM: PgBouncer closes every client and server connection at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port: every client connection is cut."""
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{self.login}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, Any]]:
        """A `SHOW <what>` of the admin console (simple query protocol, hence ClientCursor)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn:
            cursor = psycopg.ClientCursor(conn)
            cursor.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _answers(self) -> bool:
        try:
            self.show("VERSION")
        except psycopg.Error:
            return False
        return True
