"""Engines and sessions: one engine per process, sessions owned by their callers."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings


def make_engine(
    settings: Settings, *, pool_size: int = 5, application_name: str = "pillars"
) -> Engine:
    """Create an engine for `settings.database_url`.

    `pool_pre_ping` lets every process survive a database restart: a dead
    pooled connection is replaced instead of failing the next statement.
    """
    return create_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"application_name": application_name},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose sessions keep objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """Return this process's shared engine, built from the environment on first use.

    Handlers running in the worker use it for their own writes.
    """
    settings = get_settings()
    return make_engine(settings, pool_size=max(5, settings.worker_concurrency + 4))
