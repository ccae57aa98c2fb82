"""Spans and traces: the live span model, the sealed records every sink reads, the tracer,
context propagation and W3C ids."""

from __future__ import annotations

from agentos_obs.tracing._kinds import CostStatus, SpanKind, SpanStatus
from agentos_obs.tracing._records import EventRecord, SpanRecord, TraceRecord, union_ms
from agentos_obs.tracing._rollup import NONE_LABEL, UsageRollup
from agentos_obs.tracing._sanitize import AttributeValue, clean_text, sanitize_attributes
from agentos_obs.tracing._seal import MAX_TOKENS, agent_of, model_of, session_of, user_of
from agentos_obs.tracing._spans import Span, SpanEvent, Trace
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
    "MAX_TOKENS",
    "NONE_LABEL",
    "AttributeValue",
    "CostStatus",
    "EventRecord",
    "NoopTracer",
    "Span",
    "SpanEvent",
    "SpanKind",
    "SpanProcessor",
    "SpanRecord",
    "SpanStatus",
    "Trace",
    "TraceRecord",
    "Tracer",
    "TracerConfig",
    "UsageRollup",
    "agent_of",
    "clean_text",
    "current_span",
    "current_trace",
    "model_of",
    "sanitize_attributes",
    "session_of",
    "union_ms",
    "use_span",
    "user_of",
]
