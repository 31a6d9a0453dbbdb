"""Settings come from the environment, once, with clear errors."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings, normalize_database_url


@pytest.mark.parametrize(
    "given",
    ["postgresql://u@h/db", "postgresql+psycopg://u@h/db", "postgres://u@h/db"],
)
def test_database_url_accepts_both_spellings(given: str) -> None:
    assert normalize_database_url(given) == "postgresql+psycopg://u@h/db"


def test_missing_database_url_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        Settings.from_env({})


def test_non_postgres_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must start with postgresql://"):
        Settings.from_env({"DATABASE_URL": "sqlite:///x.db"})


def test_job_modules_are_split_on_commas() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://h/db", "JOB_MODULES": "a.b, c ,"})
    assert settings.job_modules == ("a.b", "c")


def test_bad_numbers_fail_at_start() -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "WORKER_CONCURRENCY": "many"}
    with pytest.raises(ConfigError, match="WORKER_CONCURRENCY must be a whole number"):
        Settings.from_env(env)
