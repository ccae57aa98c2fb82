"""Where a new trace continues from: an extracted W3C context or the app's OpenTelemetry span.

The tracer asks :func:`remote_parent` whenever a trace starts; :mod:`.propagation` sets the
extracted context. OpenTelemetry is never imported here: if the app has not loaded it, there
is no active OpenTelemetry span to join.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["EXTRACTED", "RemoteContext", "format_traceparent", "otel_context", "remote_parent"]


@dataclass(frozen=True)
class RemoteContext:
    """The caller's position in a distributed trace."""

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.sampled)


EXTRACTED: ContextVar[RemoteContext | None] = ContextVar("agentos_obs_remote_context", default=None)


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def otel_context() -> RemoteContext | None:
    otel_trace: Any = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return None
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    tracestate = context.trace_state.to_header() if context.trace_state else None
    return RemoteContext(
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        bool(context.trace_flags & 1),
        tracestate or None,
    )


def remote_parent() -> tuple[str, str] | None:
    """(trace id, parent span id) a new trace should continue, or None.

    The context of the innermost :func:`extract` block first, else the app's active
    OpenTelemetry span. The tracer asks this whenever a trace starts.
    """
    extracted = EXTRACTED.get()
    if extracted is not None:
        return extracted.trace_id, extracted.span_id
    otel = otel_context()
    if otel is not None:
        return otel.trace_id, otel.span_id
    return None
