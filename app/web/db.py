"""One SQLAlchemy session per request, closed when the app context ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import make_engine, make_session_factory


def get_session() -> Session:
    """Return the request's session; the view decides when to commit."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["pillars_sessions"]()
    session: Session = g.db_session
    return session


def close_session(error: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    settings = app.config["PILLARS_SETTINGS"]
    # One connection per request thread (WEB_DB_POOL): a request uses one session.
    engine: Engine = make_engine(
        settings, pool_size=settings.web_pool, application_name="pillars-web"
    )
    app.extensions["pillars_engine"] = engine
    app.extensions["pillars_sessions"] = make_session_factory(engine)
    app.teardown_appcontext(close_session)
