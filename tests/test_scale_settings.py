"""The settings of pools, poolers and the release step: clear refusals for what cannot work."""

from __future__ import annotations

import psycopg
import pytest

from app.config import ConfigError, Settings
from app.db import describe

URL = {"DATABASE_URL": "postgresql://h/db"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**URL, **env})


def test_pools_default_to_one_connection_per_slot_and_per_thread() -> None:
    plain = settings()
    assert (plain.handler_pool, plain.web_pool) == (10, 4)
    sized = settings(WORKER_CONCURRENCY="25", WEB_THREADS="8")
    assert (sized.handler_pool, sized.web_pool) == (25, 8)
    chosen = settings(WORKER_DB_POOL="3", WEB_DB_POOL="2")
    assert (chosen.handler_pool, chosen.web_pool) == (3, 2)


@pytest.mark.parametrize("name", ["WORKER_DB_POOL", "WEB_DB_POOL", "WEB_THREADS"])
@pytest.mark.parametrize("raw", ["0", "-1", "many", "1001", "²", "1e3", "9" * 5000])
def test_a_pool_size_is_a_whole_number_from_1_to_1000(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a whole number from 1 to 1000"):
        settings(**{name: raw})


def test_the_pool_mode_is_session_or_transaction() -> None:
    assert not settings().behind_transaction_pooler
    assert settings(DATABASE_POOL_MODE=" Transaction ").behind_transaction_pooler
    with pytest.raises(ConfigError, match="DATABASE_POOL_MODE must be session .* or transaction"):
        settings(DATABASE_POOL_MODE="statement")


def test_a_direct_url_is_a_postgres_url_and_stays_out_of_repr() -> None:
    direct = settings(DATABASE_DIRECT_URL="postgres://app:secret@db:5432/app")
    assert direct.database_direct_url == "postgresql+psycopg://app:secret@db:5432/app"
    assert "secret" not in repr(direct)
    with pytest.raises(ConfigError, match="DATABASE_DIRECT_URL must start with postgresql://"):
        settings(DATABASE_DIRECT_URL="mysql://db/app")


def test_asynchronous_commits_are_refused_behind_a_transaction_pooler() -> None:
    with pytest.raises(ConfigError, match="ALTER ROLE ... SET synchronous_commit = off"):
        settings(DATABASE_POOL_MODE="transaction", WORKER_SYNCHRONOUS_COMMIT="off")


def test_migration_timeouts_are_finite_and_the_statement_limit_can_be_off() -> None:
    assert settings(MIGRATION_STATEMENT_TIMEOUT="0").migration_statement_timeout == 0
    assert settings(MIGRATION_LOCK_TIMEOUT="0.25").migration_lock_timeout == 0.25
    for raw in ("0", "nan", "inf", "-1", "86401", "soon"):
        with pytest.raises(ConfigError, match="MIGRATION_LOCK_TIMEOUT must be"):
            settings(MIGRATION_LOCK_TIMEOUT=raw)
    with pytest.raises(ConfigError, match="MIGRATION_STATEMENT_TIMEOUT must be 0 .off. or"):
        settings(MIGRATION_STATEMENT_TIMEOUT="nan")


@pytest.mark.parametrize(
    ("said", "hint"),
    [
        ("FATAL:  sorry, too many clients already", "PostgreSQL's max_connections is used up"),
        (
            "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER",
            "but for reserved slots",
        ),
        ("ERROR:  no more connections allowed (max_client_conn)", "PgBouncer's max_client_conn"),
        ("ERROR:  query_wait_timeout", "PgBouncer's pool kept this client waiting"),
    ],
)
def test_a_refused_connection_is_described_with_what_to_do(said: str, hint: str) -> None:
    error = psycopg.OperationalError(f"connection failed: connection to server failed: {said}")
    line = describe(error)
    assert line.startswith("OperationalError: connection failed") and hint in line
    assert "docs/operations.md, Sizing" in line


def test_other_errors_are_described_as_before() -> None:
    assert describe(psycopg.OperationalError("server closed the connection")) == (
        "OperationalError: server closed the connection"
    )
