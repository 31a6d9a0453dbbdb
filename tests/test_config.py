"""Settings come from the environment, once, with clear errors."""

from __future__ import annotations

import secrets

import pytest

from app.config import (
    ConfigError,
    PayloadLimits,
    Rate,
    Settings,
    normalize_database_url,
    secret_key_problem,
)


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


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "1e309", "1e10", "0", "-1", "x"])
@pytest.mark.parametrize("name", ["WORKER_POLL_INTERVAL", "JOB_RETENTION_DAYS", "LOGIN_WINDOW"])
def test_a_number_that_no_wait_can_use_fails_at_start(name: str, raw: str) -> None:
    # NaN made every wait on it return at once (a busy loop), infinity crashed the first.
    with pytest.raises(ConfigError, match=rf"^{name} must be a (positive )?number"):
        Settings.from_env({"DATABASE_URL": "postgresql://h/db", name: raw})


def test_a_concurrency_past_any_machine_fails_at_start() -> None:
    # Each slot is a thread and a connection: a typo's extra zeros must not start them.
    env = {"DATABASE_URL": "postgresql://h/db", "WORKER_CONCURRENCY": "100000"}
    with pytest.raises(ConfigError, match="WORKER_CONCURRENCY must be at most 1,000"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "WORKER_CONCURRENCY": "1000"}).worker_concurrency == 1000


@pytest.mark.parametrize(
    ("name", "largest"),
    [
        ("JOB_PAYLOAD_MAX_DEPTH", 500),
        ("JOB_PAYLOAD_MAX_BYTES", 100 * 1024 * 1024),
        ("UPLOAD_MAX_BYTES", 512 * 1024 * 1024),
        ("MIGRATION_LOCK_RETRIES", 1_000),
        ("WORKER_MAX_ABANDONED", 1_000),
        ("REPORTS_IN_FLIGHT_MAX", 1_000_000),
        ("REPORT_BUILDS_PER_USER", 1_000_000),
        ("LOGIN_MAX_FAILURES", 1_000_000),
    ],
)
def test_a_whole_number_past_its_largest_sensible_value_fails_at_start(
    name: str, largest: int
) -> None:
    # Past these, a limit stops limiting: a payload depth Python cannot encode
    # (refused with a limit it does not exceed), an upload no field can store,
    # a release step that retries for days.
    read = PayloadLimits.from_env if name.startswith("JOB_PAYLOAD_") else Settings.from_env
    env = {"DATABASE_URL": "postgresql://h/db"}
    with pytest.raises(ConfigError, match=rf"^{name} must be at most {largest:,}, got"):
        read({**env, name: str(largest + 1)})
    read({**env, name: str(largest)})


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "SECRET_KEY is not set"),
        ("dev", "development placeholder"),
        ("short-but-not-empty", "fewer than 32"),
    ],
)
def test_a_missing_placeholder_or_short_secret_key_is_named_in_one_line(
    key: str, words: str
) -> None:
    problem = secret_key_problem(key)
    assert problem is not None and words in problem and "\n" not in problem
    assert "secrets.token_urlsafe" in problem  # says how to make a good one


def test_a_long_random_secret_key_is_accepted() -> None:
    assert secret_key_problem(secrets.token_urlsafe(32)) is None


@pytest.mark.parametrize(
    ("raw", "rate"),
    [("20/h", Rate(20, 3600)), ("1/5min", Rate(1, 300)), ("3 / 2d", Rate(3, 172800))],
)
def test_rates_read_as_count_per_period(raw: str, rate: Rate) -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "UPLOAD_RATE_PER_USER": raw}
    assert Settings.from_env(env).upload_rate_per_user == rate


@pytest.mark.parametrize("raw", ["20", "0/h", "20/0h", "many/h", "20/week", "1e9/h"])
def test_bad_rates_fail_at_start(raw: str) -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "SIGNUP_RATE_PER_ADDRESS": raw}
    with pytest.raises(ConfigError, match="SIGNUP_RATE_PER_ADDRESS must look like 20/h"):
        Settings.from_env(env)


@pytest.mark.parametrize("raw", ["-1", "one", "11"])
def test_trusted_proxy_hops_is_a_small_whole_number(raw: str) -> None:
    env = {"DATABASE_URL": "postgresql://h/db", "TRUSTED_PROXY_HOPS": raw}
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS must be a whole number"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://u:secret@h:abc/db", "cannot be read as a URL: check the host, the port"),
        ("postgresql://u:secret@[::1/db", "cannot be read as a URL"),
        ("postgresql://u:secret@h/db?connect_timeout=nan", "bad value for connect_timeout"),
        ("postgresql://u:secret@h/db?no_such_option=1", 'invalid URI query parameter: "no_such'),
    ],
)
def test_a_database_url_no_driver_can_read_fails_at_start_without_its_password(
    url: str, words: str
) -> None:
    with pytest.raises(ConfigError, match="^DATABASE_URL cannot be ") as refused:
        Settings.from_env({"DATABASE_URL": url})
    assert words in str(refused.value) and "secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("WORKER_HEARTBEAT_INTERVAL", "1e-9"),
        ("WORKER_HEARTBEAT_INTERVAL", "0.01"),
        ("WORKER_POLL_INTERVAL", "1e-300"),
        ("CRON_ORPHAN_RETENTION_DAYS", "1e9"),
        ("JOB_RETENTION_DAYS", "3e6"),
        ("AUDIT_RETENTION_DAYS", "1e6"),
        ("EXPORT_RETENTION_DAYS", "40000"),
    ],
)
def test_a_number_that_would_hammer_the_database_or_overflow_its_dates_fails_at_start(
    name: str, raw: str
) -> None:
    """A heartbeat every nanosecond was 1,000 UPDATEs a second; a retention of 1e9 days
    put now() - interval past PostgreSQL's dates, and cron fired nothing at all."""
    with pytest.raises(
        ConfigError, match=rf"^{name} must be a (number from|positive number up to) "
    ):
        Settings.from_env({"DATABASE_URL": "postgresql://h/db", name: raw})


def test_days_of_retention_as_short_as_seconds_are_fine() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://h/db", "JOB_RETENTION_DAYS": "0.0003"}
    )
    assert settings.job_retention_days == 0.0003


def test_a_stale_timeout_within_two_heartbeats_fails_at_start() -> None:
    """Jobs that are running would be taken for lost between two beats and run again."""
    env = {
        "DATABASE_URL": "postgresql://h/db",
        "WORKER_HEARTBEAT_INTERVAL": "30",
        "WORKER_STALE_TIMEOUT": "45",
    }
    with pytest.raises(ConfigError, match=r"^WORKER_STALE_TIMEOUT \(45 s\) must be at least twice"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "WORKER_STALE_TIMEOUT": "60"}).stale_timeout == 60
