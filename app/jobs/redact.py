"""Keep secrets out of everything people read: logs, stored errors, the dashboard.

A payload key that looks secret (password, token, api_key, ...) has its value
masked wherever the payload is shown, and the value itself is cut out of any
error text that happens to quote it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MASK = "***"

#: Keys whose values are never shown: matched anywhere in the key, any case.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|credential|private[-_]?key"
    r"|session|cookie|signature|otp|pin$",
    re.IGNORECASE,
)


def is_secret(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


#: Deeper than any JSON document a job needs; also ends a circular structure.
MAX_DEPTH = 64


def mask(value: Any, depth: int = 0) -> Any:
    """Return `value` with the values of secret-looking keys replaced, at any depth."""
    if depth > MAX_DEPTH:
        return MASK
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k)) else mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, depth + 1) for v in value]
    return value


def _secret_values(value: Any, inside_secret: bool = False, depth: int = 0) -> Iterator[str]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_values(item, inside_secret or is_secret(str(key)), depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _secret_values(item, inside_secret, depth + 1)
    elif inside_secret and value is not None and not isinstance(value, bool):
        text = str(value)
        if len(text) >= 3:  # masking "1" everywhere would garble the text
            yield text


def redact(text: str, payload: Any) -> str:
    """Cut every secret value of `payload` (and its repr) out of `text`."""
    for secret in sorted(set(_secret_values(payload)), key=len, reverse=True):
        text = text.replace(repr(secret), MASK).replace(secret, MASK)
    return text
