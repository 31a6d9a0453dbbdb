"""Tracing with OpenTelemetry: the API in the code, the SDK only when configured.

`configure` loads the SDK only when the standard OTEL_* variables ask for an
exporter (OTEL_TRACES_EXPORTER, or an OTLP endpoint) or PILLARS_TRACE_FILE
names a file of JSON lines; until then `enabled` is False and every helper
returns at its first line, so tracing costs nothing. A job carries the W3C
context of the span that enqueued it (`inject`); its worker continues that
trace for a first attempt on time, and starts a trace of its own with a
link back for a retry or a late start (`consuming`), so retries hours later
never stretch the request's trace.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from app.jobs.execution import Claimed

log = logging.getLogger(__name__)

#: Set by `configure` once an SDK tracer provider is installed.
enabled = False
#: A first attempt claimed this many seconds after its enqueue starts a trace of its own.
link_after = 60.0
#: `messaging.system` of every span about a job.
SYSTEM = "pillars"


def configure(service: str, *, late_after: float = 60.0) -> bool:
    """Install the SDK if OTEL_* (or PILLARS_TRACE_FILE) asks for it; whether tracing is on.

    The service name is OTEL_SERVICE_NAME's, else `service`; sampling and the
    OTLP endpoint follow the standard variables.
    """
    global enabled, link_after
    link_after = late_after
    if enabled:
        return True
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    path = os.environ.get("PILLARS_TRACE_FILE", "").strip()
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not (path or endpoint or exporter not in ("", "none")):
        return False
    try:
        from app.tracing_sdk import install
    except ImportError as error:
        log.warning("tracing configured but the SDK is missing (%s): install pillars[otel]", error)
        return False
    install(service, exporter or ("otlp" if endpoint else "none"), path)
    enabled = True
    return True


def current_trace_id() -> str | None:
    """The current span's trace id in hex, or None (tracing off, or no span)."""
    if not enabled:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def inject() -> str | None:
    """The current trace context as W3C headers in JSON, for a job to carry; None untraced."""
    if not enabled:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None


@contextmanager
def span(name: str, kind: str = "INTERNAL", **attributes: Any) -> Iterator[Span | None]:
    """A span of `kind` (a `SpanKind` name) under the current one; None when tracing is off."""
    if not enabled:
        yield None
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("pillars")
    with tracer.start_as_current_span(
        name, kind=trace.SpanKind[kind], attributes=_attributes(attributes)
    ) as current:
        yield current


@contextmanager
def root(name: str, **attributes: Any) -> Iterator[Span | None]:
    """A span that starts a trace of its own (a cron occurrence); None when tracing is off."""
    if not enabled:
        yield None
        return
    from opentelemetry import context, trace

    tracer = trace.get_tracer("pillars")
    with tracer.start_as_current_span(
        name, context=context.Context(), attributes=_attributes(attributes)
    ) as current:
        yield current


@contextmanager
def consuming(job: Claimed) -> Iterator[Span | None]:
    """The consumer span of one attempt (OpenTelemetry's messaging conventions).

    A first attempt on time is a child of the span that enqueued the job; a
    retry, or a first attempt claimed `link_after` seconds after its enqueue,
    starts a trace of its own with a link to that span.
    """
    if not enabled:
        yield None
        return
    from opentelemetry import context, propagate, trace

    try:
        carrier = json.loads(job.trace_context) if job.trace_context else {}
    except ValueError:
        carrier = {}
    enqueued = propagate.extract(carrier if isinstance(carrier, dict) else {})
    origin = trace.get_current_span(enqueued).get_span_context()
    follows = origin.is_valid and job.attempt == 1 and job.age < link_after
    links = [trace.Link(origin)] if origin.is_valid and not follows else []
    tracer = trace.get_tracer("pillars")
    with tracer.start_as_current_span(
        f"process {job.queue}",
        context=enqueued if follows else context.Context(),
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.job_id),
            "pillars.job.name": job.name,
            "pillars.job.attempt": job.attempt,
        },
        record_exception=False,
    ) as current:
        yield current


def ended(current: Span | None, outcome: str, message: str, traceback: str | None) -> None:
    """Record an attempt's outcome on its span; a failure as an exception event (redacted)."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("pillars.job.outcome", outcome)
    if outcome != "succeeded":
        current.add_event(
            "exception",
            {
                "exception.type": message.split(":", 1)[0][:200],
                "exception.message": message,
                "exception.stacktrace": traceback or "",
            },
        )
        current.set_status(Status(StatusCode.ERROR, message[:500]))


def _attributes(given: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("__", "."): value for key, value in given.items() if value is not None}


def instrument_app(app: Any) -> None:
    """Trace the Flask app's requests, when tracing is on."""
    if enabled:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]


def trace_id_of(carrier: object) -> str | None:
    """The trace id in a job's stored W3C context (`traceparent`), or None."""
    if not isinstance(carrier, dict):
        return None
    parts = str(carrier.get("traceparent", "")).split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or not all(c in _HEX for c in parts[1]):
        return None
    return parts[1] if parts[1] != "0" * 32 else None


_HEX = set("0123456789abcdef")
