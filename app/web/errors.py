"""Error pages for people and JSON errors for scripts, with messages that say what to do."""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.web.exports import human_size

MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in first.",
    404: "There is nothing here, or it is not yours to see.",
    405: "That page does not take this kind of request.",
    413: "The upload is larger than the limit of {limit}.",
    500: "Something went wrong on our side. It has been logged; try again later.",
}


def _message(error: HTTPException) -> str:
    """The description given to `abort`, else our wording of the status."""
    if error.description and error.description != type(error).description:
        return error.description
    size, most = request.content_length, request.max_content_length
    if error.code == 413 and size is not None and most is not None and size <= most:
        # Werkzeug's limit on a form's parts (max_form_parts), not on its size.
        parts = request.max_form_parts or 0
        return f"The form has too many fields or files (at most {parts:,})."
    limit = human_size(current_app.config["PILLARS_SETTINGS"].upload_max_bytes)
    return MESSAGES.get(error.code or 500, error.name).format(limit=limit)


def handle_http(error: HTTPException) -> ResponseReturnValue:
    """Answer JSON under /api/ and a page elsewhere, with the error's own status."""
    code, message = error.code or 500, _message(error)
    if request.path.startswith("/api/"):
        return {"error": message}, code
    return render_template("error.html", code=code, title=error.name, message=message), code


def handle_csrf(error: CSRFError) -> ResponseReturnValue:
    message = "This form expired or did not come from this site. Reload the page and try again."
    return render_template("error.html", code=400, title="Form expired", message=message), 400


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(HTTPException, handle_http)
