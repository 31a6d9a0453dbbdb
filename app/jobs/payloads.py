"""Payloads as JSON text: what enqueue lets in, and reading them back without ever failing.

Every rule here exists because the database or the worker would otherwise
refuse a payload late, where it hurts: PostgreSQL's jsonb refuses NUL
characters and lone surrogates (and the error aborts the caller's whole
transaction), and a payload nested ~1000 deep or holding a number of more
than 4,300 digits cannot be decoded by Python. So enqueue refuses them up
front, naming the place, and the worker decodes each claimed payload on its
own: a row that still cannot be read (written by SQL, past every check)
fails alone instead of taking its batch down with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from app.jobs.errors import InvalidPayload


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: One encoder for every payload. `json.dumps`, and `JSONEncoder.encode` too, build
#: a new C encoder per call, which costs more than encoding a small payload. No
#: circular check: it would share a dict between threads; a cycle ends in a
#: RecursionError, told apart from deep nesting in `_deep_or_circular`.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_CHUNKS = (
    None
    if _C_ENCODER is None  # a Python without the _json accelerator
    else _C_ENCODER(
        None, _refuse, json.encoder.encode_basestring, None, ": ", ", ", False, False, False
    )
)
_FALLBACK = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False)


def _encode(value: object) -> str:
    if _CHUNKS is None:
        return _FALLBACK.encode(value)
    return "".join(_CHUNKS(value, 0))


def encode(payload: dict[str, Any], *, job: str, max_depth: int, max_bytes: int) -> str:
    """Return `payload` as JSON text that PostgreSQL and every worker will accept, or raise."""
    return to_json(
        payload,
        f"payload for job {job!r}",
        max_depth=max_depth,
        max_bytes=max_bytes,
        limit="JOB_PAYLOAD_MAX_BYTES",
    )


def to_json(
    value: object, where: str, *, max_depth: int, max_bytes: int, limit: str | None = None
) -> str:
    """Return `value` as JSON text jsonb accepts and Python reads back, or raise `InvalidPayload`
    (naming the setting `limit`, if one sets `max_bytes`).

    The common case costs two C calls (dumps, encode) and a count: the
    Python walk runs only for values that are nested or broken.
    """
    payload = value
    try:
        text = _encode(payload)
    except RecursionError:
        raise InvalidPayload(_deep_or_circular(payload, where, max_depth)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"{where} is not JSON: {exc}") from None
    if text.count("[") + text.count("{") > max_depth:
        _check_depth(payload, where, max_depth)
    if "\\u0000" in text:
        # Or a backslash before "u0000" in a string, which is fine: look.
        path = _first(payload, lambda s: "\x00" in s)
        if path is not None:
            raise InvalidPayload(f"{where}: {path} contains a NUL character (\\u0000)")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        path = _first(payload, has_lone_surrogate)
        raise InvalidPayload(
            f"{where}: {path or 'a string'} contains a lone surrogate (not valid Unicode)"
        ) from None
    if size > max_bytes:
        setting = f" ({limit})" if limit else ""
        raise InvalidPayload(
            f"{where} is {size:,} bytes of JSON; the limit is {max_bytes:,}{setting}: "
            "store large data elsewhere and pass its key"
        )
    return text


def decode(text: str | None) -> tuple[dict[str, Any], str | None]:
    """Read a payload back from the table: (payload, None), or ({}, why it cannot be read)."""
    if text is None:
        return {}, "the payload is missing"
    try:
        value = json.loads(text)
    except RecursionError:
        return {}, "the payload is nested too deeply to decode"
    except ValueError as exc:
        return {}, f"the payload cannot be decoded: {exc}"
    if not isinstance(value, dict):
        return {}, f"the payload is a JSON {type(value).__name__}, not an object"
    return value, None


def _deep_or_circular(payload: object, where: str, max_depth: int) -> str:
    """Why encoding ran out of stack: a value that contains itself, or deep nesting
    (past `max_depth`, or past what this thread's stack can encode at all).

    One walk, depth first, with the containers on the current path in a set:
    linear in the payload, however deep or wide.
    """
    on_path: set[int] = set()
    stack: list[tuple[object, int, bool]] = [(payload, 0, False)]
    deepest = 0
    while stack:
        value, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(value))
            continue
        if not isinstance(value, dict | list | tuple):
            continue
        if id(value) in on_path:
            return f"{where} is not JSON: Circular reference detected"
        if depth >= max_depth:
            return f"{where} is nested deeper than {max_depth} levels"
        deepest = max(deepest, depth + 1)
        on_path.add(id(value))
        stack.append((value, depth, True))
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1, False) for child in children)
    return f"{where} is nested too deeply to encode here ({deepest} levels)"


def _check_depth(payload: object, where: str, max_depth: int) -> None:
    stack: list[tuple[object, int, str]] = [(payload, 0, "payload")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            children: Iterator[tuple[object, str]] = (
                (v, f"{path}[{k!r}]") for k, v in value.items()
            )
        elif isinstance(value, list | tuple):
            children = ((v, f"{path}[{i}]") for i, v in enumerate(value))
        else:
            continue
        if depth >= max_depth:
            raise InvalidPayload(
                f"{where} is nested deeper than {max_depth} levels (at {path[:200]}); "
                "JOB_PAYLOAD_MAX_DEPTH sets the limit"
            )
        stack.extend((child, depth + 1, child_path) for child, child_path in children)


def _first(payload: object, bad: Any) -> str | None:
    """The path of the first key or string for which `bad` holds, e.g. payload['a'][2]."""
    stack: list[tuple[object, str]] = [(payload, "payload")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str) and bad(value):
            return path[:200]
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and bad(key):
                    return f"the key {key[:40]!r} of {path[:160]}"
                stack.append((item, f"{path}[{key!r}]"))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return None


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a surrogate no UTF-8 can encode (jsonb and the driver refuse it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
