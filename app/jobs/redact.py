"""Keep secrets out of everything people read: logs, stored errors, the dashboard.

A payload key that looks secret (password, token, api_key, dsn, ...) has its
value masked wherever the payload is shown, and the value itself is cut out
of any error text that happens to quote it. A password written into a URL
(`postgresql://app:secret@db/app`, `?api_key=...`) is masked in any value and
any text, whatever its key.
"""

from __future__ import annotations

import functools
import re
from typing import Any

MASK = "***"

#: Keys whose values are never shown: matched anywhere in the key, any case.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|auth|credential|session|cookie|signature|bearer|jwt|dsn|iban|hmac"
    r"|database[-_]?url|conn(ection)?[-_]?str(ing)?|card[-_]?(number|num|no)|credit[-_]?card",
    re.IGNORECASE,
)
#: Secret only as a whole word of the key (`key`, `signing_key`, `apiKey`, `user-pin`):
#: inside longer words they mean nothing (`monkey`, `spinner`, `hotpot`, `message`).
SECRET_WORDS = frozenset({"key", "pwd", "pin", "otp", "cvv", "cvc", "cvv2", "ssn", "pan", "salt"})
#: The words of a key: runs of lower case or digits, capitalised words, acronyms.
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


@functools.lru_cache(maxsize=4096)
def is_secret(key: str) -> bool:
    """Whether `key` names a secret. Remembered: the same few keys come with every job
    (and every line it logs), and two regular expressions per key add up."""
    if SECRET_KEY.search(key):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORDS.findall(key))


#: `scheme://user:password@host`: the password is everything between the colon and
#: the last `@` before the host. Anchored on `://`, and no part can cross a space or a
#: slash, so the search stays linear on any text.
_URL_PASSWORD = re.compile(r"(://[^\s/@:]*:)([^\s/]*)@")
#: `?name=value` / `&name=value` in a URL, where `name` may be secret.
_QUERY_VALUE = re.compile(r"([?&;]([\w.-]{1,64})=)([^\s&#;'\"]*)")


def scrub(text: str) -> str:
    """`text` with passwords in URLs and secret-looking query values replaced by `***`."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m[1]}{MASK}@", text)
    if "=" in text:
        text = _QUERY_VALUE.sub(lambda m: m[1] + MASK if is_secret(m[2]) else m[0], text)
    return text


#: Deeper than any JSON document a job needs; also ends a circular structure.
MAX_DEPTH = 64


def mask(value: Any, depth: int = 0) -> Any:
    """Return `value` with the values of secret-looking keys (and URL passwords) replaced."""
    if depth > MAX_DEPTH:
        return MASK
    if isinstance(value, dict):
        return {k: MASK if is_secret(str(k)) else mask(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, depth + 1) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def _secret_values(value: Any) -> list[str]:
    """The values in `value` that must not be shown: those under secret-looking keys,
    and passwords in URLs anywhere.

    A list filled by one recursive walk rather than nested generators: it runs
    for every line a job logs (the finished-attempt line at least), and a plain
    payload (a few keys, no secrets) costs a check per key and nothing more.
    """
    found: list[str] = []
    _collect(value, False, 0, found)
    return found


def _collect(value: Any, inside_secret: bool, depth: int, found: list[str]) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            secret = inside_secret or is_secret(str(key))
            if secret or isinstance(item, dict | list) or (isinstance(item, str) and "://" in item):
                _collect(item, secret, depth + 1, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, inside_secret, depth + 1, found)
    elif inside_secret and value is not None and not isinstance(value, bool):
        text = str(value)
        if len(text) >= 3:  # masking "1" everywhere would garble the text
            found.append(text)
    elif isinstance(value, str) and "://" in value:
        # A URL under an innocent key: its password is a secret value of its own.
        for match in _URL_PASSWORD.finditer(value):
            if len(match[2]) >= 3:
                found.append(match[2])


def redact(text: str, payload: Any) -> str:
    """Cut every secret value of `payload` (and its repr) out of `text`, then `scrub` it."""
    secrets = _secret_values(payload)
    if secrets:
        for secret in sorted(set(secrets), key=len, reverse=True):
            text = text.replace(repr(secret), MASK).replace(secret, MASK)
    return scrub(text)
