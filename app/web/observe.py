"""Each request's id: taken from a sane `X-Request-ID`, else made, and sent back.

Bound for the request's log lines (`app.logs`) and saved with every job the
request enqueues, along with the route that enqueued it, so a job can be
followed back to its request and the request forward to its jobs.
"""

from __future__ import annotations

import uuid

from flask import Flask, g, request
from werkzeug.wrappers import Response

from app import logs

HEADER = "X-Request-ID"


def _begin() -> None:
    rid = logs.request_id(request.headers.get(HEADER)) or uuid.uuid4().hex
    rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
    # The route, not the path: a reset link's token never becomes a job's origin.
    g.log_ids = logs.bind(request_id=rid, origin=f"request {request.method} {rule}")
    g.request_id = rid


def _answer(response: Response) -> Response:
    rid = g.get("request_id")
    if rid is not None:
        response.headers[HEADER] = rid
    return response


def _end(error: BaseException | None) -> None:
    token = g.pop("log_ids", None)
    if token is not None:
        try:
            logs.unbind(token)
        except ValueError:  # bound in another context (a copied request context)
            pass


def init_app(app: Flask) -> None:
    """Bind a request id for every request and return it in the response."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_answer)
    app.teardown_request(_end)
