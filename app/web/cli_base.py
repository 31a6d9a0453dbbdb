"""What every `flask` command group of Pillars shares: setup problems in one line.

A newcomer's first `flask jobs stats` may meet a database that is not
running or not migrated; they get the sentence that says what to do
(`app.preflight`), not a page of traceback. Other errors keep theirs.
"""

from __future__ import annotations

import re
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy import exc

from app import preflight
from app.config import ConfigError

#: Control characters (C0 but tab, DEL, C1) and the Unicode line separators.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def shown(value: object, *, lines: bool = False) -> str:
    """`value` as text fit for an operator's terminal: control characters written as
    escapes. An error message, a traceback or a name written to the database by
    anyone may hold ESC (a sequence that rewrites the terminal) or a newline that
    forges a line of output; `lines` keeps newlines, for a traceback printed whole."""
    text = str(value)
    pattern = _CONTROL_BUT_NEWLINE if lines else _CONTROL
    if pattern.search(text):
        text = pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text


class DatabaseGroup(AppGroup):
    """An `AppGroup` whose commands explain a missing or unmigrated database in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except exc.SQLAlchemyError as error:
            # The command's app context has ended by now; the app has not.
            app = ctx.ensure_object(ScriptInfo).load_app()
            problem = preflight.explain(app.extensions["pillars_engine"], error)
            if problem is None:
                raise
            raise click.ClickException(problem) from None


def create_cli_app() -> Flask:
    """The app for the `flask` command (`.flaskenv`): a bad setting is one line, not a traceback."""
    from app.web import create_app

    try:
        return create_app()
    except ConfigError as error:
        raise SystemExit(f"Error: {error}") from None
