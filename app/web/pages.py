"""The front page, and how pages show times."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("pages", __name__)


@bp.get("/")
def home() -> ResponseReturnValue:
    return render_template("pages/home.html")


@bp.app_template_filter("utc")
def utc(moment: datetime) -> str:
    """A database time as UTC, whatever time zone the database session uses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
