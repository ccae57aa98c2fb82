"""Rows of the span store: traces and spans as SQLite parameters, and the upserts.

Runs on the store's writer thread. Serialisation never raises on odd attribute values
(they become text); the innermost-usage rule is stored as ``counts_usage`` so SQL sums never
double count a parent and its LLM call.
"""

from __future__ import annotations

import json
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus, Trace

__all__ = ["UPSERT_SPAN", "UPSERT_TRACE", "span_row", "to_json", "trace_row"]

_FAILED = frozenset({SpanStatus.ERROR, SpanStatus.TIMEOUT})

# One encoder for every row: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


def to_json(value: Any) -> str:
    """JSON text of attributes/events; never raises (odd values become their str())."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    try:
        return _encode(value)
    except (TypeError, ValueError):
        # Non-string keys or a reference cycle: fall back to a flat, string-keyed copy.
        if isinstance(value, dict):
            flat = {
                str(k): v if isinstance(v, (str, int, float, bool)) else str(v)
                for k, v in value.items()
            }
            return json.dumps(flat, ensure_ascii=False, separators=(",", ":"))
        return json.dumps(str(value), ensure_ascii=False)


def _agent_name(span: Span) -> str | None:
    agent = span.ancestor(SpanKind.AGENT)
    if agent is None:
        return None
    name = agent.attributes.get(attr.AGENT_NAME)
    return str(name) if name else agent.name or None


def _is_llm_call(span: Span) -> bool:
    if span.counts_usage:
        return True
    # A failed call carries no usage; count it unless an inner LLM span is the real call.
    return (
        span.kind is SpanKind.LLM
        and not span.has_usage
        and not any(child.kind is SpanKind.LLM for child in span.children)
    )


def span_row(span: Span) -> tuple[Any, ...]:
    llm_call = _is_llm_call(span)
    model = span.model_name or None
    if model is None and llm_call:
        requested = span.attributes.get(attr.LLM_REQUEST_MODEL)
        model = str(requested) if requested else None
    latency = span.attributes.get(attr.LLM_LATENCY_MS)
    duration = span.duration_ms
    latency_ms = (
        float(latency)
        if isinstance(latency, (int, float)) and not isinstance(latency, bool)
        else duration
    )
    return (
        span.trace_id,
        span.span_id,
        span.parent_id,
        span.name,
        span.kind.value,
        span.status.value,
        span.start_time,
        span.end_time,
        duration,
        latency_ms,
        model,
        span.provider,
        span.input_tokens,
        span.output_tokens,
        span.cache_read_tokens,
        span.cache_write_tokens,
        span.reasoning_tokens,
        span.cost_usd,
        int(span.counts_usage),
        int(llm_call),
        _agent_name(span),
        to_json(span.attributes),
        to_json([event.to_dict() for event in span.events]),
    )


def trace_row(trace: Trace) -> tuple[Any, ...]:
    usage = trace.usage_totals()
    root = trace.root_span
    tracer = trace._tracer
    # A root with a parent id but no parent object continues a trace from another service.
    remote_parent = root.parent_id if root is not None and root.parent is None else None
    return (
        trace.trace_id,
        trace.name or (root.name if root is not None else ""),
        tracer.service_name if tracer is not None else None,
        trace.start_time,
        trace.end_time,
        trace.total_duration_ms,
        trace.status.value,
        root.span_id if root is not None else None,
        root.kind.value if root is not None else None,
        remote_parent,
        trace.user_id,
        trace.session_id,
        len(trace.spans),
        sum(1 for s in trace.spans if s.status in _FAILED),
        usage["llm_calls"],
        usage["unpriced_llm_calls"],
        usage["input_tokens"],
        usage["output_tokens"],
        usage["cache_read_tokens"],
        usage["cache_write_tokens"],
        usage["reasoning_tokens"],
        usage["cost_usd"],
        to_json(trace.attributes),
    )


_SUMMED = (
    "span_count",
    "error_count",
    "llm_calls",
    "unpriced_llm_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)
# The same trace id may arrive from several processes (a distributed trace continued with
# propagation.extract): rows merge. The part without a remote parent names the trace.
_OURS_IS_ROOT = "(traces.remote_parent_id IS NOT NULL AND excluded.remote_parent_id IS NULL)"
UPSERT_TRACE = (
    "INSERT INTO traces (trace_id, name, service_name, start_time, end_time, duration_ms, "
    "status, root_span_id, root_kind, remote_parent_id, user_id, session_id, span_count, "
    "error_count, llm_calls, unpriced_llm_calls, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, attributes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id) DO UPDATE SET "
    + ", ".join(
        [
            *(
                f"{col} = CASE WHEN {_OURS_IS_ROOT} THEN excluded.{col} ELSE traces.{col} END"
                for col in ("name", "root_span_id", "root_kind", "remote_parent_id")
            ),
            "service_name = COALESCE(traces.service_name, excluded.service_name)",
            "user_id = COALESCE(traces.user_id, excluded.user_id)",
            "session_id = COALESCE(traces.session_id, excluded.session_id)",
            "start_time = MIN(traces.start_time, excluded.start_time)",
            "end_time = MAX(COALESCE(traces.end_time, 0), COALESCE(excluded.end_time, 0))",
            "duration_ms = (MAX(COALESCE(traces.end_time, 0), COALESCE(excluded.end_time, 0))"
            " - MIN(traces.start_time, excluded.start_time)) / 1e6",
            "status = CASE WHEN 'error' IN (traces.status, excluded.status) THEN 'error' "
            "WHEN 'timeout' IN (traces.status, excluded.status) THEN 'timeout' "
            "WHEN 'cancelled' IN (traces.status, excluded.status) THEN 'cancelled' "
            "ELSE 'ok' END",
            *(f"{col} = traces.{col} + excluded.{col}" for col in _SUMMED),
            "attributes = json_patch(traces.attributes, excluded.attributes)",
        ]
    )
)
UPSERT_SPAN = (
    "INSERT OR REPLACE INTO spans (trace_id, span_id, parent_id, name, kind, status, "
    "start_time, end_time, duration_ms, latency_ms, model_name, provider, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, "
    "counts_usage, llm_call, agent_name, attributes, events) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
