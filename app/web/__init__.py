"""The web pillar: a Flask app factory that answers fast and hands slow work to the queue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.config import Settings
from app.jobs import load_job_modules


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; `test_config` overrides settings in tests."""
    app = Flask(__name__)
    settings = Settings.from_env()
    app.config.from_mapping(SECRET_KEY=settings.secret_key, PILLARS_SETTINGS=settings)
    if test_config is not None:
        app.config.from_mapping(test_config)
    # The web tier validates payloads at enqueue, so it knows every job name.
    load_job_modules(settings.job_modules)

    from app.web import cli, db, health

    db.init_app(app)
    app.register_blueprint(health.bp)
    app.cli.add_command(cli.cron)
    return app
