"""Spans and traces: the live span model, the sealed records every sink reads, the tracer,
context propagation and W3C ids."""

from __future__ import annotations

from agentos_obs.tracing._spans import Span, SpanEvent, SpanKind, SpanStatus, Trace
from agentos_obs.tracing._tracer import (
    NoopTracer,
    SpanProcessor,
    Tracer,
    TracerConfig,
    current_span,
    current_trace,
    use_span,
)

__all__ = [
    "NoopTracer",
    "Span",
    "SpanEvent",
    "SpanKind",
    "SpanProcessor",
    "SpanStatus",
    "Trace",
    "Tracer",
    "TracerConfig",
    "current_span",
    "current_trace",
    "use_span",
]
