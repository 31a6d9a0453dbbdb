"""The server the queue benchmark runs on, and the databases it makes there for itself.

Without a URL the benchmark starts a private embedded PostgreSQL in a
temporary folder and deletes it afterwards. Given a URL (a server other
people may use), it creates databases named after its own process id,
`bench_<pid>_<system>`, and drops exactly those at the end, even after an
error or Ctrl-C: it never touches a database it did not make.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

#: One database per system, so no system measures another's leftovers.
SYSTEMS = ("raw", "pgqueuer", "pillars")


@dataclass(frozen=True)
class Databases:
    """libpq DSNs of this run's databases, by system, and what the server is."""

    dsns: dict[str, str]
    description: str

    def dsn(self, system: str) -> str:
        return self.dsns[system]


def database_name(system: str, pid: int | None = None) -> str:
    """The name this process gives its database for `system`: unique per run on a server."""
    return f"bench_{os.getpid() if pid is None else pid}_{system}"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _at(admin: str, name: str) -> str:
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def describe(dsn: str) -> str:
    """Version and the settings that change what a queue can do, for the table's header."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('autovacuum'),"
            " current_setting('synchronous_commit'), current_setting('fsync'),"
            " current_setting('shared_buffers')"
        ).fetchone()
    assert row is not None
    version, autovacuum, sync, fsync, buffers = row
    return (
        f"PostgreSQL {version} (autovacuum {autovacuum}, synchronous_commit {sync}, "
        f"fsync {fsync}, shared_buffers {buffers})"
    )


@contextmanager
def databases(url: str | None) -> Iterator[Databases]:
    """Yield fresh databases for every system on `url`'s server (or an embedded one)."""
    with tempfile.TemporaryDirectory(prefix="pillars-bench-") as tmp:
        server: Any = None
        if url is None:
            from dev import embedded_server

            server = embedded_server(Path(tmp) / "pg", cleanup="delete")
            url = str(server.get_uri())
        admin = _libpq(url)
        created: list[str] = []
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                for system in SYSTEMS:
                    name = database_name(system)
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
            dsns = {system: _at(admin, database_name(system)) for system in SYSTEMS}
            where = "embedded, private to this run" if server is not None else "given server"
            yield Databases(dsns, f"{describe(admin)}, {where}")
        finally:
            if server is not None:
                server.cleanup()  # the whole server goes, before its folder does
            elif created:
                _drop(admin, created)


def _drop(admin: str, names: list[str]) -> None:
    """Drop the databases this run created (WITH FORCE: a stuck worker must not keep one)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
