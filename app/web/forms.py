"""The site's forms: fields, limits and the messages people see when input is wrong.

Plain WTForms classes bound to `request.form`; CSRF is checked for every POST
by Flask-WTF's `CSRFProtect` before a view runs (see `app.web.security`).
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email
from wtforms import EmailField, Form, PasswordField
from wtforms.fields import Field
from wtforms.validators import EqualTo, InputRequired, Length, StopValidation

#: RFC 5321's limit for a whole address; the database and every mail server agree.
EMAIL_MAX = 254
NEW_PASSWORD = [
    InputRequired("Choose a password."),
    Length(min=8, max=200, message="A password has 8 to 200 characters."),
]


def has_control_characters(value: str) -> bool:
    """Whether `value` holds a control or format character (NUL, CR, LF, TAB, U+200B, ...)."""
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in value)


class EmailAddress:
    """Refuse what is not one plain email address, with a message that says why.

    Control characters and overlong input are refused before anything else
    looks at them. `syntax=False` (sign-in) stops there: an account made
    under older rules must still be able to sign in, and the database decides
    whether the address exists. Otherwise `email-validator` checks the
    syntax, without asking DNS: no quoted local parts, no display names, so a
    comma or a second address can never slip through to a mail header.
    """

    def __init__(self, syntax: bool = True) -> None:
        self.syntax = syntax

    def __call__(self, form: Form, field: Field) -> None:
        value = field.data or ""
        if has_control_characters(value):
            raise StopValidation("An email address cannot contain control characters.")
        if len(value) > EMAIL_MAX:
            raise StopValidation(f"An email address has at most {EMAIL_MAX} characters.")
        if not self.syntax:
            return
        if "=?" in value:  # an encoded word: mail programs decode it into another address
            raise StopValidation("Enter an email address like name@example.com.")
        try:
            validate_email(value, check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError:
            raise StopValidation("Enter an email address like name@example.com.") from None


EMAIL = [InputRequired("Enter your email address."), EmailAddress()]


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def reject(field: Field, message: str) -> None:
    """Add an error found after validation (e.g. by the database) to `field`."""
    field.errors = [*field.errors, message]


class SignupForm(Form):
    email = EmailField("Email", EMAIL, filters=[strip])
    password = PasswordField("Password", NEW_PASSWORD)


class LoginForm(Form):
    email = EmailField(
        "Email",
        [InputRequired("Enter your email address."), EmailAddress(syntax=False)],
        filters=[strip],
    )
    password = PasswordField("Password", [InputRequired("Enter your password.")])


class ConfirmForm(Form):
    password = PasswordField("Password", [InputRequired("Enter your password.")])


class ForgotForm(Form):
    email = EmailField("Email", EMAIL, filters=[strip])


class ResetForm(Form):
    password = PasswordField("New password", NEW_PASSWORD)
    confirm = PasswordField(
        "New password again",
        [InputRequired("Type the new password again."), EqualTo("password", "The two differ.")],
    )
