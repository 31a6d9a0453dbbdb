"""The web pillar: a Flask app factory that answers fast and hands slow work to the queue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import tracing
from app.config import ConfigError, Settings, secret_key_problem
from app.jobs import load_job_modules

#: Room for the multipart envelope around the largest file a user may upload.
UPLOAD_ENVELOPE = 64 * 1024


def create_app(
    test_config: Mapping[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Build the Flask app from `settings` (by default, the environment's).

    `test_config` overrides Flask's config in tests, as flaskr's does.

    Refuses to start (`ConfigError`, one line saying what to set) with a
    missing, placeholder or short SECRET_KEY, unless debugging or testing.
    """
    app = Flask(__name__)
    app.config.from_mapping(PILLARS_SETTINGS=settings or Settings.from_env())
    if test_config is not None:
        app.config.from_mapping(test_config)
    settings = app.config["PILLARS_SETTINGS"]
    _configure(app, settings, test_config or {})
    # The web tier validates payloads at enqueue, so it knows every job name.
    load_job_modules(settings.job_modules)
    if settings.trusted_proxy_hops:
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    from app.web import (
        admin,
        api,
        auth,
        cron_cli,
        db,
        errors,
        exports,
        health,
        jobs_cli,
        limits,
        limits_cli,  # noqa: F401 (adds `flask jobs limit` and `limits`)
        metrics,
        observe,
        pages,
        security,
        users,
        users_cli,
    )

    tracing.configure("pillars-web", late_after=settings.trace_link_after)
    tracing.instrument_app(app)
    observe.init_app(app)
    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    limits.init_app(app)
    app.context_processor(lambda: {"current_user": users.current_user})
    for module in (health, pages, auth, exports, api, admin, metrics):
        app.register_blueprint(module.bp)
    app.cli.add_command(cron_cli.cron)
    app.cli.add_command(jobs_cli.jobs)
    app.cli.add_command(users_cli.users)
    return app


def _configure(app: Flask, settings: Settings, given: Mapping[str, Any]) -> None:
    """Derive Flask's own settings from ours; anything in `given` (tests) wins."""
    from app.web.security import served_over_https

    problem = secret_key_problem(settings.secret_key)
    if problem and not (app.debug or app.testing):
        raise ConfigError(problem)
    derived = {
        "SECRET_KEY": settings.signing_key,
        "MAX_CONTENT_LENGTH": settings.upload_max_bytes + UPLOAD_ENVELOPE,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Over https the cookie never travels in clear text (see also HSTS).
        "SESSION_COOKIE_SECURE": served_over_https(settings.site_url),
        "PERMANENT_SESSION_LIFETIME": timedelta(seconds=settings.session_lifetime),
    }
    app.config.from_mapping({k: v for k, v in derived.items() if k not in given})
