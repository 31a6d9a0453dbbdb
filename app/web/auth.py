"""Signing up, in and out, and resetting a forgotten password."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import Form

from app import accounts
from app.config import Settings
from app.web import forms, limits
from app.web.db import get_session
from app.web.users import safe_next, sign_in, sign_out

bp = Blueprint("auth", __name__)

#: The one answer to every failed sign-in: a wrong password, an unknown email and an
#: unconfirmed account (whose right password also sends its link again) look alike.
SIGN_IN_FAILED = (
    "The email or the password is wrong, or, if you have just signed up, "
    "follow the link we emailed you."
)

#: How a slowed sign-in waits; a seam so tests can see the wait without sitting through it.
pause = time.sleep


def _page(template: str, form: Form) -> ResponseReturnValue:
    """Render a form page; a POST that got here failed, so it answers 400."""
    return render_template(template, form=form), 400 if request.method == "POST" else 200


def _home() -> Response:
    return redirect(url_for("exports.index"), 303)


def _settings() -> Settings:
    settings: Settings = current_app.config["PILLARS_SETTINGS"]
    return settings


@bp.route("/signup", methods=("GET", "POST"))
def signup() -> ResponseReturnValue:
    """Create an unconfirmed account and queue its welcome email in one transaction.

    The answer is the same whether or not the address has an account: either
    way a message goes to it (the confirmation link, or "someone tried to
    sign up" for its holder), and only following that link signs in.
    """
    form = forms.SignupForm(request.form)
    if request.method == "POST" and form.validate():
        session = get_session()
        limits.enforce(limits.signups())
        email = form.email.data or ""
        accounts.sign_up(session, _settings(), email, form.password.data or "")
        session.commit()
        flash(f"We sent a message to {accounts.normalize_email(email)}: follow it to go on.")
        return redirect(url_for("auth.login"), 303)
    return _page("auth/signup.html", form)


#: A wrong password on the confirmation page: the link's holder did not choose it.
CONFIRM_FAILED = "That is not the password this account was made with."


@bp.route("/confirm/<token>", methods=("GET", "POST"))
def confirm(token: str) -> ResponseReturnValue:
    """Confirm the address from the emailed link and the password chosen at sign-up.

    A GET only shows the form, so a mail scanner that fetches the link uses
    nothing up. The password is asked for because the link alone proves only
    that its holder reads the mail: whoever signed up first with someone
    else's address chose the password (the owner resets it instead, which
    confirms too), and a link an attacker sends for their own account would
    otherwise sign the victim's browser in to it. Wrong passwords count as
    failed sign-ins, under the same limits and delays.
    """
    session = get_session()
    user = accounts.user_for_confirm_token(session, _settings().signing_key, token)
    if user is None:
        return render_template("auth/confirm_expired.html"), 400
    form = forms.ConfirmForm(request.form)
    page = {"form": form, "email": user.email}
    if request.method != "POST" or not form.validate():
        status = 400 if request.method == "POST" else 200
        return render_template("auth/confirm.html", **page), status
    addr = limits.client_address()
    _slow_down(session, addr)
    try:
        confirmed = accounts.confirm_with_password(
            session, _settings(), user, form.password.data or "", addr
        )
    except accounts.TooManyAttempts as exc:
        wait = limits.retry_in(exc.retry_after)
        forms.reject(form.password, f"Too many failed sign-ins. Try again in {wait}.")
        retry = {"Retry-After": str(exc.retry_after)}
        return render_template("auth/confirm.html", **page), 429, retry
    session.commit()  # a failure must be counted, a success clears the count
    if not confirmed:
        forms.reject(form.password, CONFIRM_FAILED)
        return render_template("auth/confirm.html", **page), 400
    session.refresh(user)  # the new session generation
    sign_in(user)
    flash("Welcome! Your address is confirmed and your account is ready.")
    return _home()


def _slow_down(session: Session, addr: str) -> None:
    """Wait as long as failed sign-ins from `addr` have earned, with no transaction open."""
    delay = accounts.sign_in_delay(session, _settings(), addr)
    session.commit()
    if delay:
        pause(delay)


@bp.route("/login", methods=("GET", "POST"))
def login() -> ResponseReturnValue:
    """Sign in, counting failures in the database so every web process sees the same limit."""
    form = forms.LoginForm(request.form)
    if request.method != "POST":
        return _page("auth/login.html", form)
    session, addr = get_session(), limits.client_address()
    if not form.validate():
        if form.email.errors and form.email.data:
            # A malformed or huge email is a failed sign-in like any other.
            accounts.record_failed_sign_in(session, form.email.data, addr)
            session.commit()
        return _page("auth/login.html", form)
    _slow_down(session, addr)
    try:
        user = accounts.authenticate(
            session, _settings(), form.email.data or "", form.password.data or "", addr
        )
    except accounts.TooManyAttempts as exc:
        wait = limits.retry_in(exc.retry_after)
        forms.reject(form.email, f"Too many failed sign-ins. Try again in {wait}.")
        retry = {"Retry-After": str(exc.retry_after)}
        return render_template("auth/login.html", form=form), 429, retry
    session.commit()  # a failure must be counted, a success clears the count
    if user is not None:
        sign_in(user)
        return redirect(safe_next(request.args.get("next")) or url_for("exports.index"), 303)
    forms.reject(form.password, SIGN_IN_FAILED)
    return _page("auth/login.html", form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out here and in every other browser: the session generation moves on."""
    sign_out()
    flash("You are signed out, in this browser and every other.")
    return redirect(url_for("pages.home"), 303)


@bp.route("/forgot", methods=("GET", "POST"))
def forgot() -> ResponseReturnValue:
    """Queue a reset link; the answer is the same whether or not the account exists."""
    form = forms.ForgotForm(request.form)
    if request.method == "POST" and form.validate():
        session = get_session()
        limits.enforce(limits.forgot())
        accounts.request_password_reset(session, _settings(), form.email.data or "")
        session.commit()
        flash("If an account uses that address, a link to reset its password is on its way.")
        return redirect(url_for("auth.login"), 303)
    return _page("auth/forgot.html", form)


@bp.route("/reset/<token>", methods=("GET", "POST"))
def reset(token: str) -> ResponseReturnValue:
    """Set a new password from an emailed link; the link works once, for an hour."""
    session = get_session()
    using = request.method == "POST"  # locked: two uses at once cannot both succeed
    user = accounts.user_for_reset_token(session, _settings().signing_key, token, lock=using)
    if user is None:
        return render_template("auth/reset_expired.html"), 400
    form = forms.ResetForm(request.form)
    if request.method == "POST" and form.validate():
        accounts.change_password(session, user, form.password.data or "")
        session.commit()
        session.refresh(user)  # the new session generation
        sign_in(user)
        flash("Your password is changed, and every other browser is signed out.")
        return _home()
    return _page("auth/reset.html", form)
