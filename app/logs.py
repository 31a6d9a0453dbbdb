"""Logging for every pillar: readable text by default, one JSON object a line with
LOG_FORMAT=json, each line carrying the ids that tie one piece of work together.

The ids live in a context variable (`bound`): the web binds the request id
for a request, the worker a job's id, name and attempt for its handler, cron
a schedule's occurrence. Ordinary `logging` calls made meanwhile get them
from the handler's filter, with the process's own ids (`set_process`) and
the trace id when tracing is on. Every line is one line: CR, LF and NUL in
a message are escaped (a traceback's lines are indented in text), huge
messages are cut, and secrets are masked (`app.jobs.redact`), including the
values of the running job's secret payload keys.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import os
import queue
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app import tracing
from app.config import ConfigError
from app.jobs.redact import redact, scrub

#: A message longer than this is cut: a log line is not a data store.
MAX_MESSAGE_CHARS = 16_000
#: Ids in the order text lines show them.
ID_FIELDS = ("request_id", "job_id", "job_name", "attempt", "worker_id", "cron", "trace_id")

_ids: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("pillars_log_ids")
#: The secret-bearing payload of the job whose handler is running, to cut out of lines.
_payload: contextvars.ContextVar[Any] = contextvars.ContextVar("pillars_log_payload")
#: Ids of the process itself (the worker id), on every line it writes.
_process: dict[str, Any] = {}
#: Attributes every LogRecord has: anything else on a record came through `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def current() -> Mapping[str, Any]:
    """The ids bound in this context (request id, job id, ...), without the process's."""
    return _ids.get({})


class bound:  # noqa: N801 (used as a function: `with logs.bound(job_id=...)`)
    """Add `ids` to every line logged in this context until the block ends.

    `payload`: a job's payload, whose secret values are cut out of those lines.
    A class rather than a generator: the worker enters one per attempt.
    """

    __slots__ = ("_ids", "_payload", "_tokens")

    def __init__(self, payload: Any = None, **ids: Any) -> None:
        self._payload, self._ids = payload, ids

    def __enter__(self) -> None:
        token = bind(**self._ids)
        payload = self._payload
        self._tokens = (token, _payload.set(payload) if payload is not None else None)

    def __exit__(self, *exc_info: object) -> None:
        token, payload_token = self._tokens
        if payload_token is not None:
            _payload.reset(payload_token)
        _ids.reset(token)


def bind(**ids: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add `ids` to this context's lines until `unbind(token)`; None values are left out."""
    return _ids.set({**_ids.get({}), **{k: v for k, v in ids.items() if v is not None}})


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _ids.reset(token)


def set_process(**ids: Any) -> None:
    """Ids of this process (e.g. `worker_id`), on every line from now on."""
    _process.update(ids)


class Ids(logging.Filter):
    """Put the bound ids (and the trace id) on each record as `record.ids`."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = {**_process, **_ids.get({})}
        if tracing.enabled:
            trace_id = tracing.current_trace_id()
            if trace_id:
                ids["trace_id"] = trace_id
        record.ids = ids
        record.secret_payload = _payload.get(None)
        return True


def clean(text: str, payload: Any = None) -> str:
    """`text` fit for one line: secrets masked, cut to size, CR/LF/NUL kept out."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(text) - MAX_MESSAGE_CHARS} more chars)"
    text = redact(text, payload) if payload is not None else scrub(text)
    return text.replace("\x00", "\\x00")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a record carries beyond the standard: its ids and any `extra` values."""
    fields = dict(getattr(record, "ids", None) or {})
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in ("ids", "secret_payload"):
            fields[key] = value
    return fields


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception as error:  # a bad format string must not lose the line
        text = f"{record.msg!r} (unformattable: {error})"
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        text = f"{text}\n{record.exc_text}"
    if record.stack_info:
        text = f"{text}\n{record.stack_info}"
    return clean(text, getattr(record, "secret_payload", None))


#: The last whole second `_time` wrote, and how it reads: lines come many a second.
_second: tuple[int, str] = (-1, "")


def _time(record: logging.LogRecord) -> str:
    """`2026-11-30T13:40:11.070Z`: UTC, to the millisecond (cut, not rounded)."""
    global _second
    whole = int(record.created)
    if whole != _second[0]:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((record.created - whole) * 1000):03d}Z"


def _ids_text(record: logging.LogRecord) -> str:
    """`key=value ...` for the ids a record carries (an `extra` value over a bound one)."""
    given = vars(record)
    bound_ids = given.get("ids") or {}
    parts = []
    for key in ID_FIELDS:
        if key in given:
            value = given[key]
        elif key in bound_ids:
            value = bound_ids[key]
        else:
            continue
        parts.append(f"{key}={_one_line(str(value))}")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """`time process LEVEL logger: message [ids]`; continuation lines indented."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        ids = _ids_text(record)
        message = _message(record).replace("\r", "\\r")
        if _CONTROL.search(message):  # a terminal escape, or what some tools take for a newline
            message = _CONTROL.sub(_escaped, message)
        message = message.replace("\n", "\n    ")
        line = f"{_time(record)} {self.process} {record.levelname} {record.name}: {message}"
        return f"{line} [{ids}]" if ids else line


#: Control characters but tab and newline (C0, DEL, C1), and the Unicode line and
#: paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def _one_line(text: str) -> str:
    if len(text) <= 200 and text.isascii() and text.isprintable() and " " not in text:
        if "=" not in text and "://" not in text:  # nothing for `scrub` to mask
            return text
    return clean(text).replace("\r", "\\r").replace("\n", "\\n").replace(" ", "_")[:200]


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, process, logger, message, ids and extras."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in _fields(record).items():
            document.setdefault(key, _jsonable(value))
        # ensure_ascii: control characters and lone surrogates come out as \u escapes.
        return json.dumps(document, ensure_ascii=True, default=str)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if len(text) <= MAX_MESSAGE_CHARS and "=" not in text and "://" not in text:
        return text.replace("\x00", "\\x00")  # nothing for `scrub` to mask
    return clean(text)


def formatter(process: str) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for: `json`, or readable text (anything else)."""
    if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
        return JsonFormatter(process)
    return TextFormatter(process)


def handler(process: str) -> logging.Handler:
    """A stderr handler with the ids filter and the LOG_FORMAT formatter."""
    out = logging.StreamHandler()
    out.addFilter(Ids())
    out.setFormatter(formatter(process))
    return out


#: A sane incoming request id: printable ASCII without spaces, and short.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(given: str | None) -> str | None:
    """`given` if it is a request id worth keeping (bounded, printable, one line), else None."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return None


class _Handoff(logging.handlers.QueueHandler):
    """Hands each record to the writer thread, with its ids read where it was logged.

    Threads that log never wait for one another's writes: with a line per
    finished attempt, a worker's job threads would otherwise queue up on the
    stream's lock at every job.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        """As `Handler.handle`, without its lock: handing off is thread-safe as it is, and
        the job threads that all log at the end of every job must not queue up on it."""
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return bool(passed)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Formatted where it is written; only the arguments are fixed now,
        # since the objects they name may change before then.
        try:
            record.msg, record.args = record.getMessage(), None
        except Exception:  # left as it is: the formatter says it was unformattable
            pass
        return record


#: How long the writer lets lines gather after the first of a batch, in seconds.
BATCH_WINDOW = 0.005
#: At most this many lines in one write: a burst, or a backlog behind a slow
#: stderr, goes out in writes of bounded size.
BATCH_LINES = 1_000
_STOP = object()


class _Writer:
    """The thread that formats and writes the lines of this process, a batch at a time.

    A line per finished attempt at thousands of attempts a second cost a
    write to stderr, a wake-up of this thread and a lock each; lines that
    arrive together now share one write, in the order they were logged.
    """

    def __init__(self, lines: queue.SimpleQueue[Any], out: logging.StreamHandler[Any]) -> None:
        self._lines, self._out = lines, out
        self._thread = threading.Thread(target=self._run, name="pillars-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write every line queued so far, then end the thread."""
        self._lines.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self._lines.get()]
            if batch[0] is not _STOP:
                time.sleep(BATCH_WINDOW)  # puts meanwhile wake nobody: no wait to end
            while len(batch) < BATCH_LINES:
                try:
                    batch.append(self._lines.get_nowait())
                except queue.Empty:
                    break
            stop = any(record is _STOP for record in batch)
            self._write([record for record in batch if record is not _STOP])
            if stop:
                return

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self._out.format(record) + "\n")
            except Exception:  # as logging's own handlers do: report it, keep going
                self._out.handleError(record)
        if lines:
            try:
                self._out.stream.write("".join(lines))
                self._out.flush()
            except Exception:
                self._out.handleError(records[-1])


_writer: _Writer | None = None


def configure(process: str) -> None:
    """Log to stderr with the process name, at LOG_LEVEL (default INFO), as LOG_FORMAT says;
    a `ConfigError` (before anything changed) when LOG_LEVEL names no level.

    Lines are written by one thread of their own, in the order they were
    logged; `flush` writes what is still queued (at exit it runs by itself).
    """
    global _writer
    wanted = level()
    # Nothing here prints where a call was made from, or thread and process
    # names (the process is named by `process`): skip looking them up for
    # every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "pillars", False):
            root.removeHandler(old)
    flush()
    out = logging.StreamHandler()
    out.setFormatter(formatter(process))
    lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
    handoff = _Handoff(lines)
    handoff.addFilter(Ids())
    handoff.pillars = True  # type: ignore[attr-defined]
    _writer = _Writer(lines, out)
    _writer.start()
    root.addHandler(handoff)
    root.setLevel(wanted)


#: What LOG_LEVEL may say (in any case): `logging`'s own names (WARN, FATAL and
#: NOTSET included: a deployment may use them).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "WARN", "FATAL", "NOTSET")


def level() -> str:
    """LOG_LEVEL's level (default INFO); a `ConfigError` naming the choices for any other
    value, so a typo is one line at start rather than a traceback."""
    raw = os.environ.get("LOG_LEVEL", "")
    name = raw.strip().upper() or "INFO"
    if name not in LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {raw!r}")
    return name


def flush() -> None:
    """Write every line logged so far, and stop the writer (before an abrupt exit)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


atexit.register(flush)
