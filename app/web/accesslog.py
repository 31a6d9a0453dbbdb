"""gunicorn's logger, minus the secrets in URLs: reset and confirmation links carry their
token in the path.

A reset token in a log file is a password reset for whoever reads the logs,
for an hour; a confirmation token is half of what confirms a new account (the
password chosen at sign-up is the other), for two days. Every field of an
access-log line (request line, path, Referer and any other header or environ
value a format may name) and the URI in gunicorn's "Error handling request"
lines has the token replaced by `***`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from gunicorn import glogging

from app import logs
from app.accounts.tokens import CONFIRM_PATH, RESET_PATH

MASK = "***"
#: The token is everything after a token path up to a query, fragment, quote or space;
#: `%2F` stands for the slash in a raw request line that spells it encoded.
_TOKEN = re.compile(
    "(" + "|".join(re.escape(p.rstrip("/")) for p in (RESET_PATH, CONFIRM_PATH)) + ")"
    r"(/|%2[fF])[^\s?#\"]+",
    flags=re.IGNORECASE,
)


def mask_reset_tokens(text: str) -> str:
    """`text` with the token of every reset or confirmation path in it replaced by `***`."""
    return _TOKEN.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)


def _masked(value: Any) -> Any:
    return mask_reset_tokens(value) if isinstance(value, str) else value


class MaskingLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's own logger (`logger_class` in gunicorn.conf.py) that masks reset tokens,
    writes LOG_FORMAT's lines (`app.logs`) and puts the request id on access lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.addFilter(logs.Ids())
            handler.setFormatter(logs.formatter("web"))

    def access(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
    ) -> None:
        headers = getattr(resp, "headers", None) or []
        rid = next((value for name, value in headers if name.lower() == "x-request-id"), None)
        with logs.bound(request_id=logs.request_id(rid)):
            super().access(resp, req, environ, request_time)

    def atoms(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: _masked(value) for key, value in atoms.items()}

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().critical(_masked(msg), *map(_masked, args), **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().error(_masked(msg), *map(_masked, args), **kwargs)

    # gunicorn logs a request line it refuses as a warning ("Invalid request from
    # ip=...: Invalid HTTP request line: 'GET /reset/TOKEN\tHTTP/1.1'"), and others
    # at info and debug: every level is masked.
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().warning(_masked(msg), *map(_masked, args), **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().info(_masked(msg), *map(_masked, args), **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().debug(_masked(msg), *map(_masked, args), **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().exception(_masked(msg), *map(_masked, args), **kwargs)
