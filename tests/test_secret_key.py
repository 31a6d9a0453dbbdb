"""The site refuses to start with a guessable SECRET_KEY; development writes itself a good one."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

import dev
from app.config import ConfigError, Settings, secret_key_problem
from app.web import create_app
from tests.browser import free_port
from tests.processes import ROOT


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps a test built; their engines are closed after it."""
    built: list[Flask] = []
    yield built
    for app in built:
        app.extensions["pillars_engine"].dispose()


@pytest.mark.parametrize("key", ["", "dev", "x" * 31])
def test_the_site_refuses_to_start_with_a_weak_secret_key(settings: Settings, key: str) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(settings=replace(settings, secret_key=key))


def test_the_site_starts_with_a_strong_secret_key_and_signs_with_it(
    settings: Settings, apps: list[Flask]
) -> None:
    key = secrets.token_urlsafe(32)
    apps.append(create_app(settings=replace(settings, secret_key=key)))
    assert apps[0].secret_key == key


@pytest.mark.parametrize("mode", [{"TESTING": True}, {"DEBUG": True}])
def test_tests_and_debugging_may_run_without_a_key(
    settings: Settings, apps: list[Flask], mode: dict[str, bool]
) -> None:
    apps.append(create_app(mode, settings=replace(settings, secret_key="")))
    assert apps[0].secret_key == "dev"


@pytest.mark.slow
@pytest.mark.parametrize("key", ["", "dev", "too-short"])
def test_gunicorn_refuses_to_start_with_a_weak_key_in_one_clear_line(
    process_env: dict[str, str], key: str
) -> None:
    env = {**process_env, "SECRET_KEY": key}
    args = ["-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "SECRET_KEY" in line]
    assert line.startswith("gunicorn: SECRET_KEY")


def test_dev_up_writes_a_random_key_into_dotenv_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("DATABASE_URL=postgresql://h/db")  # no final newline
    dev.ensure_secret_key(dotenv)
    first = dotenv.read_text()
    dev.ensure_secret_key(dotenv)
    assert dotenv.read_text() == first  # kept on later runs
    lines = first.splitlines()
    assert lines[0] == "DATABASE_URL=postgresql://h/db"
    [key] = [line.split("=", 1)[1] for line in lines if line.startswith("SECRET_KEY=")]
    assert secret_key_problem(key) is None
    assert oct(dotenv.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "line", ["SECRET_KEY=abc", "export SECRET_KEY=abc", " SECRET_KEY = 'abc'", 'SECRET_KEY="abc"']
)
def test_dev_up_keeps_a_key_already_in_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text(line + "\n")
    dev.ensure_secret_key(dotenv)
    assert dotenv.read_text() == line + "\n"


def test_dev_up_fills_in_an_empty_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("SECRET_KEY=\n")
    dev.ensure_secret_key(dotenv)
    assert len(dotenv.read_text().splitlines()) == 2  # python-dotenv reads the last one


def test_dev_up_leaves_a_key_from_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", secrets.token_urlsafe(32))
    dev.ensure_secret_key(tmp_path / ".env")
    assert not (tmp_path / ".env").exists()


def test_the_suite_gives_every_process_a_proper_key() -> None:
    assert secret_key_problem(os.environ.get("SECRET_KEY", "")) is None
