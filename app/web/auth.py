"""Signing up, in and out, and resetting a forgotten password."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response
from wtforms import Form

from app import accounts
from app.config import Settings
from app.web import forms
from app.web.db import get_session
from app.web.users import safe_next, sign_in, sign_out

bp = Blueprint("auth", __name__)


def _page(template: str, form: Form) -> ResponseReturnValue:
    """Render a form page; a POST that got here failed, so it answers 400."""
    return render_template(template, form=form), 400 if request.method == "POST" else 200


def _home() -> Response:
    return redirect(url_for("exports.index"), 303)


@bp.route("/signup", methods=("GET", "POST"))
def signup() -> ResponseReturnValue:
    """Create the account and queue its welcome email in one transaction, then sign in."""
    form = forms.SignupForm(request.form)
    if request.method == "POST" and form.validate():
        session = get_session()
        try:
            user = accounts.sign_up(session, form.email.data or "", form.password.data or "")
        except accounts.EmailTaken:
            forms.reject(form.email, "An account with this email exists already. Sign in?")
        else:
            session.commit()
            sign_in(user)
            flash("Welcome! Your account is ready.")
            return _home()
    return _page("auth/signup.html", form)


@bp.route("/login", methods=("GET", "POST"))
def login() -> ResponseReturnValue:
    """Sign in, counting failures in the database so every web process sees the same limit."""
    form = forms.LoginForm(request.form)
    if request.method == "POST" and form.validate():
        settings: Settings = current_app.config["PILLARS_SETTINGS"]
        session, addr = get_session(), request.remote_addr or "unknown"
        try:
            user = accounts.authenticate(
                session, settings, form.email.data or "", form.password.data or "", addr
            )
        except accounts.TooManyAttempts as exc:
            minutes = -(-exc.retry_after // 60)
            forms.reject(form.email, f"Too many failed sign-ins. Try again in {minutes} min.")
            retry = {"Retry-After": str(exc.retry_after)}
            return render_template("auth/login.html", form=form), 429, retry
        session.commit()  # a failure must be counted, a success clears the count
        if user is not None:
            sign_in(user)
            return redirect(safe_next(request.args.get("next")) or url_for("exports.index"), 303)
        forms.reject(form.password, "The email or the password is wrong.")
    return _page("auth/login.html", form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    sign_out()
    flash("You are signed out.")
    return redirect(url_for("pages.home"), 303)


@bp.route("/forgot", methods=("GET", "POST"))
def forgot() -> ResponseReturnValue:
    """Queue a reset link; the answer is the same whether or not the account exists."""
    form = forms.ForgotForm(request.form)
    if request.method == "POST" and form.validate():
        session = get_session()
        accounts.request_password_reset(session, form.email.data or "")
        session.commit()
        flash("If an account uses that address, a link to reset its password is on its way.")
        return redirect(url_for("auth.login"), 303)
    return _page("auth/forgot.html", form)


@bp.route("/reset/<token>", methods=("GET", "POST"))
def reset(token: str) -> ResponseReturnValue:
    """Set a new password from an emailed link; the link works once, for an hour."""
    settings: Settings = current_app.config["PILLARS_SETTINGS"]
    session = get_session()
    user = accounts.user_for_reset_token(session, settings.secret_key, token)
    if user is None:
        return render_template("auth/reset_expired.html"), 400
    form = forms.ResetForm(request.form)
    if request.method == "POST" and form.validate():
        accounts.change_password(session, user, form.password.data or "")
        session.commit()
        sign_in(user)
        flash("Your password is changed.")
        return _home()
    return _page("auth/reset.html", form)
