"""Typed settings, read once from the environment.

Every process (web, worker, cron, Alembic) reads the same `Settings`, so a
value is configured in one place: the environment or a `.env` file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message says what to set."""


def normalize_database_url(url: str) -> str:
    """Return a SQLAlchemy URL that uses psycopg 3 whichever spelling was given.

    Platforms hand out `postgres://` or `postgresql://`; SQLAlchemy would pick
    psycopg2 for those, which is not installed.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(
        "DATABASE_URL must start with postgresql:// or postgresql+psycopg:// "
        f"(got {url.split(':', 1)[0]!r})"
    )


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the three processes need to know about their surroundings."""

    database_url: str
    job_modules: tuple[str, ...] = ()
    #: How many jobs one worker process runs at once (threads).
    worker_concurrency: int = 10
    #: How often a worker proves it is alive and refreshes its jobs' heartbeats.
    heartbeat_interval: float = 5.0
    #: A running job whose heartbeat is older than this is taken from its worker.
    stale_timeout: float = 60.0
    #: How long SIGTERM waits for running jobs before releasing them.
    shutdown_grace: float = 25.0
    #: Fallback poll period when no NOTIFY arrives (a lost LISTEN, a due retry).
    poll_interval: float = 1.0
    #: Whether the worker's claims and outcomes wait for the WAL flush (see README).
    worker_synchronous_commit: bool = True
    #: After a job's timeout, how long its handler may ignore the interrupt
    #: before its thread is abandoned and the attempt failed.
    worker_timeout_grace: float = 10.0
    #: Abandoned job threads still stuck; at this many the worker exits to be restarted.
    worker_max_abandoned: int = 3
    #: Deepest nesting of lists and objects a job payload may have.
    payload_max_depth: int = 100
    #: Largest job payload, in bytes of JSON.
    payload_max_bytes: int = 1024 * 1024
    #: Finished jobs older than this are pruned by the maintenance job.
    job_retention_days: float = 14.0
    secret_key: str = field(default="dev", repr=False)
    #: When set, /metrics requires `Authorization: Bearer <token>`.
    metrics_token: str = field(default="", repr=False)
    #: Where people reach the site; links in emails start with it.
    site_url: str = "http://127.0.0.1:5000"
    #: Largest CSV a user may upload, in bytes.
    upload_max_bytes: int = 2 * 1024 * 1024
    #: Uploads and the reports built from them are pruned after this many days.
    export_retention_days: float = 7.0
    #: Failed sign-ins per email address within `login_window` before refusing more.
    login_max_failures: int = 5
    login_window: float = 900.0
    mail_from: str = "Pillars <noreply@localhost>"
    #: Without an SMTP host, mail is written as .eml files into this folder.
    mail_dir: str = ".pillars/mail"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: `os.environ`), failing loudly on bad values."""
        env = os.environ if env is None else env
        url = env.get("DATABASE_URL", "").strip()
        if not url:
            raise ConfigError(
                "DATABASE_URL is not set. Set it to a PostgreSQL URL such as "
                "postgresql://user@localhost:5432/pillars, or start everything with "
                "`python3 dev.py up`, which runs an embedded PostgreSQL for you."
            )
        modules = tuple(m.strip() for m in env.get("JOB_MODULES", "").split(",") if m.strip())
        return cls(
            database_url=normalize_database_url(url),
            job_modules=modules,
            worker_concurrency=_int(env, "WORKER_CONCURRENCY", cls.worker_concurrency),
            heartbeat_interval=_float(env, "WORKER_HEARTBEAT_INTERVAL", cls.heartbeat_interval),
            stale_timeout=_float(env, "WORKER_STALE_TIMEOUT", cls.stale_timeout),
            shutdown_grace=_float(env, "WORKER_SHUTDOWN_GRACE", cls.shutdown_grace),
            poll_interval=_float(env, "WORKER_POLL_INTERVAL", cls.poll_interval),
            worker_synchronous_commit=_bool(
                env, "WORKER_SYNCHRONOUS_COMMIT", cls.worker_synchronous_commit
            ),
            worker_timeout_grace=_float(env, "WORKER_TIMEOUT_GRACE", cls.worker_timeout_grace),
            worker_max_abandoned=_int(env, "WORKER_MAX_ABANDONED", cls.worker_max_abandoned),
            payload_max_depth=_int(env, "JOB_PAYLOAD_MAX_DEPTH", cls.payload_max_depth),
            payload_max_bytes=_int(env, "JOB_PAYLOAD_MAX_BYTES", cls.payload_max_bytes),
            job_retention_days=_float(env, "JOB_RETENTION_DAYS", cls.job_retention_days),
            secret_key=env.get("SECRET_KEY", "dev"),
            metrics_token=env.get("METRICS_TOKEN", ""),
            site_url=env.get("SITE_URL", cls.site_url).rstrip("/"),
            upload_max_bytes=_int(env, "UPLOAD_MAX_BYTES", cls.upload_max_bytes),
            export_retention_days=_float(env, "EXPORT_RETENTION_DAYS", cls.export_retention_days),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", cls.login_max_failures),
            login_window=_float(env, "LOGIN_WINDOW", cls.login_window),
            mail_from=env.get("MAIL_FROM", cls.mail_from),
            mail_dir=env.get("MAIL_DIR", cls.mail_dir),
            smtp_host=env.get("SMTP_HOST", "").strip(),
            smtp_port=_int(env, "SMTP_PORT", cls.smtp_port),
            smtp_starttls=_bool(env, "SMTP_STARTTLS", cls.smtp_starttls),
            smtp_username=env.get("SMTP_USERNAME", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings.from_env()
