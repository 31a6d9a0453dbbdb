"""Tracing with OpenTelemetry: the API in the code, the SDK only when configured.

Nothing here loads the SDK unless the standard OTEL_* variables ask for an
exporter (`configure`); until then `enabled` is False and every helper
returns at its first line, so tracing costs nothing.
"""

from __future__ import annotations

#: Set by `configure` once an SDK tracer provider is installed.
enabled = False


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
    import json

    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None
