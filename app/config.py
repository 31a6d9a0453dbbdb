"""Typed settings, read once from the environment.

Every process (web, worker, cron, Alembic) reads the same `Settings`, so a
value is configured in one place: the environment or a `.env` file.
"""

from __future__ import annotations

import os
import re
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
            return _readable_url("postgresql+psycopg://" + url[len(prefix) :])
    if url.startswith("postgresql+psycopg://"):
        return _readable_url(url)
    raise ConfigError(
        "DATABASE_URL must start with postgresql:// or postgresql+psycopg:// "
        f"(got {url.split(':', 1)[0]!r})"
    )


def _readable_url(url: str) -> str:
    """`url` if SQLAlchemy and libpq can both read it, else a `ConfigError` that says what
    to look at (never the URL itself: it may hold a password).

    A port that is not a number or an unclosed IPv6 bracket failed only at the first
    connection, with a traceback; so did a `connect_timeout` that is no number.
    """
    from psycopg import ProgrammingError, conninfo
    from sqlalchemy.engine import make_url

    try:
        make_url(url)
    except Exception:
        raise ConfigError(
            "DATABASE_URL cannot be read as a URL: check the host, the port (a number) and"
            " brackets around an IPv6 address, and percent-encode special characters in"
            " the user name and password"
        ) from None
    try:
        conninfo.timeout_from_conninfo(conninfo.conninfo_to_dict(url.replace("+psycopg", "", 1)))
    except ProgrammingError as error:
        reason = re.sub(r' in URI: ".*"$', "", str(error).strip().splitlines()[0])
        raise ConfigError(f"DATABASE_URL cannot be used: {reason}") from None
    return url


#: The largest seconds or days a setting may hold: past it, waits overflow the
#: platform's clock (threading's TIMEOUT_MAX is about 9.2e9 s).
MAX_SETTING = 1e9


#: The shortest WORKER_HEARTBEAT_INTERVAL / WORKER_POLL_INTERVAL: each is a statement
#: per process at that pace (1e-9 was a thousand UPDATEs a second from one process).
MIN_INTERVAL = 0.05
#: The longest retention in days: `now() - interval` of more runs past PostgreSQL's
#: dates (1e9 days stopped cron from firing anything).
MAX_DAYS = 36_525.0


def _float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    low: float = 0.0,
    high: float = MAX_SETTING,
) -> float:
    """A finite number above 0 (or from `low`) up to `high`. NaN would turn every wait on
    it into a busy loop, and infinity (or 1e309) crash the first wait with an OverflowError."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if low > 0:
        if not low <= value <= high:  # also refuses NaN and infinity
            raise ConfigError(f"{name} must be a number from {low:g} to {high:g}, got {raw!r}")
    elif not 0 < value <= high:
        raise ConfigError(f"{name} must be a positive number up to {high:g}, got {raw!r}")
    return value


#: The largest count a whole-number setting may hold unless it says otherwise: far
#: past any sensible limit, short of a typo's extra zeros that turn one into none.
MAX_COUNT = 1_000_000


def _int(env: Mapping[str, str], name: str, default: int, high: int = MAX_COUNT) -> int:
    """A whole number from 1 to `high`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    if value > high:
        raise ConfigError(f"{name} must be at most {high:,}, got {raw!r}")
    return value


#: Job threads one worker process may run: each is a thread and, with the default
#: WORKER_DB_POOL, a connection; a typo's extra zeros must not start a million.
MAX_CONCURRENCY = 1_000
#: The deepest JOB_PAYLOAD_MAX_DEPTH: deeper payloads may not encode at all (Python's
#: recursion limit), and would be refused with a limit they do not exceed.
MAX_PAYLOAD_DEPTH = 500
#: The largest JOB_PAYLOAD_MAX_BYTES: a queue message, well inside jsonb's 255 MB.
MAX_PAYLOAD_BYTES = 100 * 1024 * 1024
#: The largest UPLOAD_MAX_BYTES: an upload is held in a web process's memory and
#: stored in one bytea field (at most 1 GB).
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: The most MIGRATION_LOCK_RETRIES: each waits up to MIGRATION_LOCK_TIMEOUT, and a
#: release step that retries for days is a stuck one.
MAX_LOCK_RETRIES = 1_000


def _timeout(env: Mapping[str, str], name: str, default: float, *, off: bool = False) -> float:
    """Seconds of a PostgreSQL timeout: finite, at most a day; 0 turns it off if `off`."""
    raw = env.get(name, "").strip()
    if off and raw in ("0", "off"):
        return 0.0
    try:
        value = _float(env, name, default)
    except ConfigError:
        value = 0.0  # refused below, with what a timeout may be
    if not 0 < value <= 86_400:
        allowed = "0 (off) or " if off else ""
        raise ConfigError(f"{name} must be {allowed}a number of seconds up to 86400, got {raw!r}")
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


#: What `secrets.token_urlsafe(32)` gives; anything shorter is guessable offline from one cookie.
SECRET_KEY_MIN_LENGTH = 32
#: The placeholder the development setup used to run with; never good enough outside it.
DEV_SECRET_KEY = "dev"


def secret_key_problem(key: str) -> str | None:
    """Say in one line what is wrong with `key` as a production SECRET_KEY, or None if nothing.

    Anyone who knows the key can sign a session cookie for any user, so a
    missing, placeholder or short key must stop the site from starting.
    """
    how = (
        "set SECRET_KEY to a random string, e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )
    if not key:
        return f"SECRET_KEY is not set: {how}"
    if key == DEV_SECRET_KEY:
        return f"SECRET_KEY is the development placeholder 'dev': {how}"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"SECRET_KEY has {len(key)} characters, fewer than {SECRET_KEY_MIN_LENGTH}: {how}"
    return None


@dataclass(frozen=True)
class Rate:
    """At most `count` events per `seconds`, e.g. 20 uploads per hour."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


_RATE = re.compile(r"(\d+)\s*/\s*(\d*)\s*(s|min|h|d)")
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _rate(env: Mapping[str, str], name: str, default: Rate) -> Rate:
    """Parse `N/unit` or `N/<k><unit>` (units s, min, h, d): `20/h`, `1/5min`."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = _RATE.fullmatch(raw)
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ConfigError(f"{name} must look like 20/h or 1/5min (count/period), got {raw!r}")
    return Rate(int(match[1]), int(match[2] or 1) * _UNITS[match[3]])


def _pool(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A connection pool size: 1 to `POOL_MAX`, or `default` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= POOL_MAX:
        raise ConfigError(f"{name} must be a whole number from 1 to {POOL_MAX}, got {raw!r}")
    return int(raw)


#: The largest pool one process may ask for: far past any sensible size, short of
#: a typo that would let one process exhaust a server on its own.
POOL_MAX = 1000
#: What sits between the processes and PostgreSQL (`DATABASE_POOL_MODE`): nothing or
#: a pooler that gives each client a server session for its whole life (`session`),
#: or a pooler that hands a server session out per transaction (`transaction`).
POOL_MODES = ("session", "transaction")


def _pool_mode(env: Mapping[str, str]) -> str:
    raw = env.get("DATABASE_POOL_MODE", "").strip().lower() or "session"
    if raw not in POOL_MODES:
        raise ConfigError(
            "DATABASE_POOL_MODE must be session (PostgreSQL itself, or a pooler in session "
            f"mode) or transaction (PgBouncer's pool_mode = transaction), got {raw!r}"
        )
    return raw


def _direct_url(env: Mapping[str, str]) -> str:
    raw = env.get("DATABASE_DIRECT_URL", "").strip()
    if not raw:
        return ""
    try:
        return normalize_database_url(raw)
    except ConfigError as error:
        raise ConfigError(str(error).replace("DATABASE_URL", "DATABASE_DIRECT_URL")) from None


def _count(env: Mapping[str, str], name: str) -> int | None:
    """A positive whole number of rows, or None when unset."""
    raw = env.get(name, "").strip().replace("_", "")
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of rows from 1, got {raw!r}")
    return int(raw)


def _hops(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip() or "0"
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(f"{name} must be a whole number from 0 to 10, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class PayloadLimits:
    """How large a job payload may be: read on its own, since any process that
    enqueues needs it, including scripts that pass their own engine and have
    no DATABASE_URL."""

    #: Deepest nesting of lists and objects.
    max_depth: int = 100
    #: Largest payload, in bytes of JSON.
    max_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PayloadLimits:
        env = os.environ if env is None else env
        return cls(
            max_depth=_int(env, "JOB_PAYLOAD_MAX_DEPTH", cls.max_depth, MAX_PAYLOAD_DEPTH),
            max_bytes=_int(env, "JOB_PAYLOAD_MAX_BYTES", cls.max_bytes, MAX_PAYLOAD_BYTES),
        )


@lru_cache(maxsize=1)
def get_payload_limits() -> PayloadLimits:
    """The payload limits of this process, from the environment on first use."""
    return PayloadLimits.from_env()


@dataclass(frozen=True)
class Settings:
    """Everything the three processes need to know about their surroundings."""

    database_url: str
    job_modules: tuple[str, ...] = ()
    #: `transaction` when DATABASE_URL goes through a transaction pooler (PgBouncer's
    #: pool_mode = transaction): no session state is relied on there (see
    #: `app.jobs.processes` for what liveness does instead).
    database_pool_mode: str = "session"
    #: A URL straight to PostgreSQL (or a session pooler) for the one session-level
    #: connection each worker and cron process keeps: LISTEN and the life lock.
    database_direct_url: str = field(default="", repr=False)
    #: Connections the job handlers of one worker process share; None: one per slot.
    worker_db_pool: int | None = None
    #: gunicorn threads per web process (gunicorn.conf.py reads the same variable) ...
    web_threads: int = 4
    #: ... and the connections they share; None: one per thread.
    web_db_pool: int | None = None
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
    #: Finished jobs older than this are pruned by the maintenance job ...
    job_retention_days: float = 14.0
    #: ... and past this many finished jobs, the oldest, whatever their age (None: no cap).
    job_retention_rows: int | None = None
    #: Records of what people did to jobs, queues and schedules are kept this many days.
    audit_retention_days: float = 365.0
    #: Cron forgets a schedule removed from code this many days after noticing.
    cron_orphan_retention_days: float = 30.0
    #: The release step: how long a migration waits for a lock before it lets the
    #: queue go on and tries again, how often it tries, and how long one of its
    #: statements may run while it holds its locks (0: no limit).
    migration_lock_timeout: float = 1.0
    migration_lock_retries: int = 10
    migration_statement_timeout: float = 30.0
    #: Signs sessions, CSRF and reset tokens; `create_app` refuses a weak one outside debug/tests.
    secret_key: str = field(default="", repr=False)
    #: When set, /metrics requires `Authorization: Bearer <token>`.
    metrics_token: str = field(default="", repr=False)
    #: Where people reach the site; links in emails start with it.
    site_url: str = "http://127.0.0.1:5000"
    #: Largest CSV a user may upload, in bytes.
    upload_max_bytes: int = 2 * 1024 * 1024
    #: Reports one user may have queued or being built at once; another upload answers 429.
    reports_in_flight_max: int = 3
    #: One user's reports built at the same time, across all workers.
    report_builds_per_user: int = 1
    #: Uploads and the reports built from them are pruned after this many days.
    export_retention_days: float = 7.0
    #: Failed sign-ins per (client address, email) within `login_window` before refusing
    #: more; an email from all addresses together may fail 4x as often.
    login_max_failures: int = 5
    login_window: float = 900.0
    #: The longest a sign-in answer is held back for an address that failed too often.
    login_slowdown_max: float = 2.0
    #: Proxies in front of the site whose X-Forwarded-For/-Proto are believed; 0 trusts none.
    trusted_proxy_hops: int = 0
    #: A session ends this long after sign-in, and after this long without a request.
    session_lifetime: float = 7 * 86400.0
    session_idle_timeout: float = 12 * 3600.0
    upload_rate_per_user: Rate = Rate(30, 3600)
    upload_rate_per_address: Rate = Rate(60, 3600)
    signup_rate_per_address: Rate = Rate(10, 3600)
    forgot_rate_per_address: Rate = Rate(10, 3600)
    #: Emails one account may be sent on request of strangers (reset links, "someone
    #: tried to sign up with your address"): one per five minutes.
    account_mail_rate: Rate = Rate(1, 300)
    mail_from: str = "Pillars <noreply@localhost>"
    #: Without an SMTP host, mail is written as .eml files into this folder.
    mail_dir: str = ".pillars/mail"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    #: Where the dashboard links a job's trace: a URL with `{trace_id}` in it ('' for none).
    trace_url_template: str = ""
    #: A first attempt that starts this long after its enqueue begins a trace of its own
    #: (linked to the enqueuing span) instead of stretching the enqueuer's trace.
    trace_link_after: float = 60.0

    @property
    def signing_key(self) -> str:
        """The key to sign with: SECRET_KEY, or the development placeholder when unset.

        Web and worker fall back alike, so reset links made by one work in the
        other in development; outside it the site refuses to start without a key.
        """
        return self.secret_key or DEV_SECRET_KEY

    @property
    def behind_transaction_pooler(self) -> bool:
        """Whether DATABASE_URL's sessions last only a transaction (no prepared statements,
        no session SETs, no LISTEN, no session advisory locks there)."""
        return self.database_pool_mode == "transaction"

    @property
    def handler_pool(self) -> int:
        """The size of the pool one worker process's handlers share."""
        return self.worker_db_pool or self.worker_concurrency

    @property
    def web_pool(self) -> int:
        """The size of the pool one web process's threads share."""
        return self.web_db_pool or self.web_threads

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
        pool_mode = _pool_mode(env)
        synchronous = _bool(env, "WORKER_SYNCHRONOUS_COMMIT", cls.worker_synchronous_commit)
        if pool_mode == "transaction" and not synchronous:
            # A session SET through a transaction pooler stays behind on a server
            # session that other clients (the site) then commit on.
            raise ConfigError(
                "WORKER_SYNCHRONOUS_COMMIT=off needs a session of its own, which "
                "DATABASE_POOL_MODE=transaction does not give: set it on the worker's "
                "database role instead (ALTER ROLE ... SET synchronous_commit = off)"
            )
        settings = cls(
            database_url=normalize_database_url(url),
            job_modules=modules,
            database_pool_mode=pool_mode,
            database_direct_url=_direct_url(env),
            worker_db_pool=_pool(env, "WORKER_DB_POOL", None),
            web_threads=_pool(env, "WEB_THREADS", cls.web_threads) or cls.web_threads,
            web_db_pool=_pool(env, "WEB_DB_POOL", None),
            worker_concurrency=_int(
                env, "WORKER_CONCURRENCY", cls.worker_concurrency, MAX_CONCURRENCY
            ),
            heartbeat_interval=_float(
                env, "WORKER_HEARTBEAT_INTERVAL", cls.heartbeat_interval, low=MIN_INTERVAL
            ),
            stale_timeout=_float(env, "WORKER_STALE_TIMEOUT", cls.stale_timeout),
            shutdown_grace=_float(env, "WORKER_SHUTDOWN_GRACE", cls.shutdown_grace),
            poll_interval=_float(env, "WORKER_POLL_INTERVAL", cls.poll_interval, low=MIN_INTERVAL),
            worker_synchronous_commit=synchronous,
            worker_timeout_grace=_float(env, "WORKER_TIMEOUT_GRACE", cls.worker_timeout_grace),
            worker_max_abandoned=_int(
                env, "WORKER_MAX_ABANDONED", cls.worker_max_abandoned, MAX_CONCURRENCY
            ),
            job_retention_days=_float(
                env, "JOB_RETENTION_DAYS", cls.job_retention_days, high=MAX_DAYS
            ),
            job_retention_rows=_count(env, "JOB_RETENTION_ROWS"),
            audit_retention_days=_float(
                env, "AUDIT_RETENTION_DAYS", cls.audit_retention_days, high=MAX_DAYS
            ),
            cron_orphan_retention_days=_float(
                env, "CRON_ORPHAN_RETENTION_DAYS", cls.cron_orphan_retention_days, high=MAX_DAYS
            ),
            migration_lock_timeout=_timeout(
                env, "MIGRATION_LOCK_TIMEOUT", cls.migration_lock_timeout
            ),
            migration_lock_retries=_int(
                env, "MIGRATION_LOCK_RETRIES", cls.migration_lock_retries, MAX_LOCK_RETRIES
            ),
            migration_statement_timeout=_timeout(
                env, "MIGRATION_STATEMENT_TIMEOUT", cls.migration_statement_timeout, off=True
            ),
            secret_key=env.get("SECRET_KEY", ""),
            metrics_token=env.get("METRICS_TOKEN", ""),
            site_url=env.get("SITE_URL", cls.site_url).rstrip("/"),
            upload_max_bytes=_int(env, "UPLOAD_MAX_BYTES", cls.upload_max_bytes, MAX_UPLOAD_BYTES),
            reports_in_flight_max=_int(env, "REPORTS_IN_FLIGHT_MAX", cls.reports_in_flight_max),
            report_builds_per_user=_int(env, "REPORT_BUILDS_PER_USER", cls.report_builds_per_user),
            export_retention_days=_float(
                env, "EXPORT_RETENTION_DAYS", cls.export_retention_days, high=MAX_DAYS
            ),
            login_max_failures=_int(env, "LOGIN_MAX_FAILURES", cls.login_max_failures),
            login_window=_float(env, "LOGIN_WINDOW", cls.login_window),
            login_slowdown_max=_float(env, "LOGIN_SLOWDOWN_MAX", cls.login_slowdown_max),
            trusted_proxy_hops=_hops(env, "TRUSTED_PROXY_HOPS"),
            session_lifetime=_float(env, "SESSION_LIFETIME", cls.session_lifetime),
            session_idle_timeout=_float(env, "SESSION_IDLE_TIMEOUT", cls.session_idle_timeout),
            upload_rate_per_user=_rate(env, "UPLOAD_RATE_PER_USER", cls.upload_rate_per_user),
            upload_rate_per_address=_rate(
                env, "UPLOAD_RATE_PER_ADDRESS", cls.upload_rate_per_address
            ),
            signup_rate_per_address=_rate(
                env, "SIGNUP_RATE_PER_ADDRESS", cls.signup_rate_per_address
            ),
            forgot_rate_per_address=_rate(
                env, "FORGOT_RATE_PER_ADDRESS", cls.forgot_rate_per_address
            ),
            account_mail_rate=_rate(env, "ACCOUNT_MAIL_RATE", cls.account_mail_rate),
            mail_from=env.get("MAIL_FROM", cls.mail_from),
            mail_dir=env.get("MAIL_DIR", cls.mail_dir),
            smtp_host=env.get("SMTP_HOST", "").strip(),
            smtp_port=_int(env, "SMTP_PORT", cls.smtp_port, 65_535),
            smtp_starttls=_bool(env, "SMTP_STARTTLS", cls.smtp_starttls),
            smtp_username=env.get("SMTP_USERNAME", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            trace_url_template=_trace_url(env),
            trace_link_after=_float(env, "TRACE_LINK_AFTER", cls.trace_link_after),
        )
        if settings.stale_timeout < 2 * settings.heartbeat_interval:
            # Running jobs would look lost between two heartbeats and be run twice.
            raise ConfigError(
                f"WORKER_STALE_TIMEOUT ({settings.stale_timeout:g} s) must be at least twice"
                f" WORKER_HEARTBEAT_INTERVAL ({settings.heartbeat_interval:g} s): a running"
                " job whose heartbeat is that old is taken for lost and run again"
            )
        return settings


def _trace_url(env: Mapping[str, str]) -> str:
    template = env.get("TRACE_URL_TEMPLATE", "").strip()
    if template and "{trace_id}" not in template:
        raise ConfigError(
            f"TRACE_URL_TEMPLATE must contain {{trace_id}}, e.g. "
            f"https://jaeger.example/trace/{{trace_id}}; got {template[:100]!r}"
        )
    return template


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings.from_env()
