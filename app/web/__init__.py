"""The web pillar: a Flask app factory that answers fast and hands slow work to the queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.config import Settings
from app.jobs import load_job_modules

#: Room for the multipart envelope around the largest file a user may upload.
UPLOAD_ENVELOPE = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; `test_config` overrides settings in tests."""
    app = Flask(__name__)
    settings = Settings.from_env()
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        PILLARS_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.upload_max_bytes + UPLOAD_ENVELOPE,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if test_config is not None:
        app.config.from_mapping(test_config)
    # The web tier validates payloads at enqueue, so it knows every job name.
    load_job_modules(app.config["PILLARS_SETTINGS"].job_modules)

    from app.web import (
        admin,
        api,
        auth,
        cli,
        db,
        errors,
        exports,
        health,
        jobs_cli,
        metrics,
        pages,
        security,
        users,
    )

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    app.context_processor(lambda: {"current_user": users.current_user})
    for module in (health, pages, auth, exports, api, admin, metrics):
        app.register_blueprint(module.bp)
    app.cli.add_command(cli.cron)
    app.cli.add_command(jobs_cli.jobs)
    app.cli.add_command(jobs_cli.users)
    return app
