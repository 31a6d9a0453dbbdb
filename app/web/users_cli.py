"""`flask users make-admin EMAIL`: the first admin is made from a shell."""

from __future__ import annotations

import click

from app import accounts
from app.jobs import audit
from app.web.cli_base import DatabaseGroup
from app.web.db import get_session

users = DatabaseGroup("users", help="Manage who may use the site's admin pages.")


@users.command("make-admin")
@click.argument("email")
def make_admin(email: str) -> None:
    """Let the user with EMAIL (who signed up already) use /admin."""
    session = get_session()
    user = accounts.find(session, email)
    if user is None:
        raise click.ClickException(f"no user with email {email!r}: sign up first")
    user.is_admin = True
    audit.record(session, audit.shell_user(), "make-admin", subject=user.email)
    session.commit()
    click.echo(f"{user.email} is now an admin")
