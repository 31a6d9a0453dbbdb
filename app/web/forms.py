"""The site's forms: fields, limits and the messages people see when input is wrong.

Plain WTForms classes bound to `request.form`; CSRF is checked for every POST
by Flask-WTF's `CSRFProtect` before a view runs (see `app.web.security`).
"""

from __future__ import annotations

from wtforms import EmailField, Form, PasswordField
from wtforms.fields import Field
from wtforms.validators import EqualTo, InputRequired, Length, Regexp

EMAIL = [
    InputRequired("Enter your email address."),
    Length(max=254, message="An email address has at most 254 characters."),
    Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address like name@example.com."),
]
NEW_PASSWORD = [
    InputRequired("Choose a password."),
    Length(min=8, max=200, message="A password has 8 to 200 characters."),
]


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def reject(field: Field, message: str) -> None:
    """Add an error found after validation (e.g. by the database) to `field`."""
    field.errors = [*field.errors, message]


class SignupForm(Form):
    email = EmailField("Email", EMAIL, filters=[strip])
    password = PasswordField("Password", NEW_PASSWORD)


class LoginForm(Form):
    email = EmailField("Email", [InputRequired("Enter your email address.")], filters=[strip])
    password = PasswordField("Password", [InputRequired("Enter your password.")])


class ForgotForm(Form):
    email = EmailField("Email", EMAIL, filters=[strip])


class ResetForm(Form):
    password = PasswordField("New password", NEW_PASSWORD)
    confirm = PasswordField(
        "New password again",
        [InputRequired("Type the new password again."), EqualTo("password", "The two differ.")],
    )
