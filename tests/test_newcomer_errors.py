"""Setup mistakes a newcomer makes get one line that says what to do, from every pillar.

Real processes: `worker.py`, `cron.py` and the `flask` command, pointed at a
port nobody listens on, at an empty database, or at a JOB_MODULES entry
that names no module.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, exc, text
from sqlalchemy.engine import make_url

from app import logs, preflight
from app.config import Settings, normalize_database_url
from app.web import create_app
from tests.browser import free_port
from tests.database import create_database, with_database

ROOT = Path(__file__).resolve().parent.parent
UPGRADE = "run `alembic upgrade head`"

pytestmark = pytest.mark.slow


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def script(name: str) -> list[str]:
    return [sys.executable, str(ROOT / name)]


@pytest.fixture
def nowhere() -> str:
    """A database URL on a loopback port nobody listens on."""
    return f"postgresql://pillars@127.0.0.1:{free_port()}/pillars"


@pytest.fixture
def unmigrated(database_url: str) -> Iterator[str]:
    """An empty database beside the test database: the server answers, no tables."""
    admin = with_database(database_url, "postgres").replace("+psycopg", "")
    create_database(admin, "pillars_unmigrated")
    yield with_database(database_url, "pillars_unmigrated")
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "pillars_unmigrated" WITH (FORCE)')


@pytest.mark.parametrize("pillar", ["worker", "cron"])
def test_an_unreachable_database_is_one_line_with_host_and_port(
    pillar: str, process_env: dict[str, str], nowhere: str
) -> None:
    done = run(script(f"{pillar}.py"), {**process_env, "DATABASE_URL": nowhere})
    assert done.returncode == 2
    port = nowhere.rsplit(":", 1)[1].split("/")[0]
    assert done.stderr.splitlines() == [
        f"{pillar}: cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"
    ]


@pytest.mark.parametrize("pillar", ["worker", "cron"])
def test_a_database_without_migrations_says_to_run_them(
    pillar: str, process_env: dict[str, str], unmigrated: str
) -> None:
    done = run(script(f"{pillar}.py"), {**process_env, "DATABASE_URL": unmigrated})
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{pillar}: database at migration [], code expects ['")
    assert line.endswith(f"]: {UPGRADE}")


def test_every_level_name_logging_knows_is_a_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("debug", "INFO", " warning ", "WARN", "error", "CRITICAL", "FATAL", "NOTSET"):
        monkeypatch.setenv("LOG_LEVEL", name)
        assert logs.level() == name.strip().upper()


@pytest.mark.parametrize("pillar", ["worker", "cron"])
@pytest.mark.parametrize("level", ["junk", "5"])
def test_a_log_level_that_names_no_level_is_one_line(
    pillar: str, level: str, process_env: dict[str, str]
) -> None:
    done = run(script(f"{pillar}.py"), {**process_env, "LOG_LEVEL": level})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{pillar}: LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, WARN, FATAL,"
        f" NOTSET, got {level!r}"
    ]


@pytest.mark.parametrize("pillar", ["worker", "cron"])
def test_a_job_module_that_does_not_exist_is_named(
    pillar: str, process_env: dict[str, str]
) -> None:
    env = {**process_env, "JOB_MODULES": "tests.jobs,myapp.jbos"}
    done = run(script(f"{pillar}.py"), env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{pillar}: JOB_MODULES names 'myapp.jbos', which cannot be imported"
        " (No module named 'myapp'): check its spelling and that its package is installed"
        " or on the path"
    ]


def test_a_job_module_that_fails_inside_keeps_its_traceback(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "broken_jobs.py").write_text("import requests_that_are_missing\n")
    env = {**process_env, "JOB_MODULES": "broken_jobs", "PYTHONPATH": str(tmp_path)}
    done = run(script("worker.py"), env)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "requests_that_are_missing" in done.stderr


@pytest.mark.parametrize("pillar", ["worker", "cron"])
def test_a_schedule_the_schedule_library_refuses_is_one_line(
    pillar: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "midnight_schedules.py").write_text(
        "import schedule\n"
        "from app.cron import Schedule, add\n"
        "add(Schedule('x.midnight', schedule.every().day.at('24:00'), 'test.noop'))\n"
    )
    env = {
        **process_env,
        "JOB_MODULES": "tests.jobs,midnight_schedules",
        "PYTHONPATH": str(tmp_path),
    }
    done = run(script(f"{pillar}.py"), env)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"{pillar}: JOB_MODULES module 'midnight_schedules' defines a schedule that cannot"
        " run as written (ScheduleValueError: Invalid number of hours"
    )


def test_cron_names_the_schedule_whose_job_is_unknown(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "typo_schedules.py").write_text(
        textwrap.dedent("""
        import schedule

        from app.cron import Schedule, add

        add(Schedule("reports.weekly", schedule.every().monday, "reports.biuld"))
        """)
    )
    env = {**process_env, "JOB_MODULES": "tests.jobs,typo_schedules", "PYTHONPATH": str(tmp_path)}
    done = run(script("cron.py"), env)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("cron: schedule 'reports.weekly': ") and "reports.biuld" in line


CliOn = Callable[[str], FlaskCliRunner]


@pytest.fixture
def cli_on(settings: Settings) -> Iterator[CliOn]:
    """`flask` commands of an app whose DATABASE_URL is the one given."""
    made: list[Flask] = []

    def runner(database_url: str) -> FlaskCliRunner:
        given = replace(settings, database_url=normalize_database_url(database_url))
        app = create_app({"TESTING": True}, settings=given)
        made.append(app)
        return app.test_cli_runner()

    yield runner
    for app in made:
        app.extensions["pillars_engine"].dispose()


@pytest.mark.parametrize(
    "args", [["jobs", "stats"], ["users", "make-admin", "a@example.com"], ["cron", "list"]]
)
def test_the_cli_says_in_one_line_that_the_database_is_unreachable(
    cli_on: CliOn, nowhere: str, args: list[str]
) -> None:
    result = cli_on(nowhere).invoke(args=args)
    port = nowhere.rsplit(":", 1)[1].split("/")[0]
    assert result.exit_code == 1
    expected = f"Error: cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused\n"
    assert result.output == expected


def test_the_cli_says_to_migrate_a_database_without_tables(cli_on: CliOn, unmigrated: str) -> None:
    result = cli_on(unmigrated).invoke(args=["jobs", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: database at migration [], code expects ['")
    assert result.output.endswith(f"]: {UPGRADE}\n")


def test_the_cli_says_in_one_line_that_the_database_takes_no_writes(
    cli_on: CliOn, database_url: str, db: Engine
) -> None:
    """DATABASE_URL naming a standby (here: writes switched off for the session)."""
    read_only = make_url(database_url).update_query_dict(
        {"options": "-c default_transaction_read_only=on"}
    )
    result = cli_on(read_only.render_as_string(hide_password=False)).invoke(
        args=["jobs", "pause", "default"]
    )
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: PostgreSQL at ") and " takes no writes (a standby, " in line
    assert line.endswith(": cannot execute INSERT in a read-only transaction")


def test_a_connection_ended_under_a_command_is_one_line_that_says_to_run_it_again(
    engine: Engine,
) -> None:
    """The server restarting, or an administrator ending the session, mid-command."""
    with engine.connect() as doomed, engine.connect() as admin:
        pid = doomed.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        with pytest.raises(exc.OperationalError) as ended:
            doomed.execute(text("SELECT 1"))
    problem = preflight.explain(engine, ended.value)
    assert problem is not None and problem.startswith("lost the connection to PostgreSQL at ")
    assert problem.endswith("the command may not have finished: run it again")
    assert "terminating connection due to administrator command" in problem


def test_a_real_fault_keeps_its_traceback(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(exc.DBAPIError) as refused:
        conn.execute(text("SELECT 1 / 0"))
    assert preflight.explain(engine, refused.value) is None


def test_plain_flask_finds_the_app_through_flaskenv(
    process_env: dict[str, str], db: Engine
) -> None:
    env = {k: v for k, v in process_env.items() if k not in ("FLASK_APP", "FLASK_DEBUG")}
    flask = str(Path(sys.executable).with_name("flask"))
    done = run([flask, "jobs", "stats"], env)
    assert done.returncode == 0, done.stderr
    assert "oldest due job waits: -" in done.stdout


def test_plain_flask_without_a_database_url_is_one_line(process_env: dict[str, str]) -> None:
    env = {**process_env, "DATABASE_URL": ""}  # set, so no .env can fill it in
    flask = str(Path(sys.executable).with_name("flask"))
    done = subprocess.run(
        [flask, "jobs", "stats"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: DATABASE_URL is not set.")


def test_flaskenv_names_the_cli_factory() -> None:
    settings = dict(
        line.split("=", 1)
        for line in (ROOT / ".flaskenv").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings == {"FLASK_APP": "app.web.cli_base:create_cli_app"}
