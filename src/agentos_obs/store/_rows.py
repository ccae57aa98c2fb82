"""Rows of the span store: sealed records as SQLite parameters, and the upserts.

Runs on the store's writer thread. Every value comes from the records: a span's row is its
:class:`~agentos_obs.tracing.SpanRecord`'s fields and derived facts (counted call, usage,
cost and cost status, model, provider, agent, latency), a trace's row its
:class:`~agentos_obs.tracing.TraceRecord` and that record's one rollup. Nothing is
re-derived here and no other span is looked at, so a row costs the same at any depth.
Attributes and events become JSON text through the one serialiser
(:func:`agentos_obs._internal.jsonsafe.dumps`).
"""

from __future__ import annotations

from typing import Any

from agentos_obs._internal.jsonsafe import dumps
from agentos_obs.tracing import SpanRecord, TraceRecord

__all__ = ["UPSERT_SPAN", "UPSERT_TRACE", "span_row", "trace_row"]


def _json_object(value: Any) -> str:
    return dumps(value) if value else "{}"


def span_row(record: SpanRecord) -> tuple[Any, ...]:
    """The ``spans`` row of one record (the column order of :data:`UPSERT_SPAN`)."""
    usage = record.usage
    status = record.cost_status
    latency = record.latency_ms
    return (
        record.trace_id,
        record.span_id,
        record.parent_id,
        record.name,
        record.kind.value,
        record.status.value,
        record.start_time,
        record.end_time,
        record.duration_ms,
        # NOT NULL since schema v1: a span that is not an LLM call and measured none
        # keeps its duration here; per-model latency reads only rows with llm_call = 1.
        record.duration_ms if latency is None else latency,
        record.model,
        record.provider,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        record.cost_usd,
        int(record.counts_usage),
        int(record.llm_call),
        None if status is None else status.value,
        record.agent,
        _json_object(record.attributes),
        dumps([event.to_dict() for event in record.events]) if record.events else "[]",
    )


def trace_row(trace: TraceRecord) -> tuple[Any, ...]:
    """The ``traces`` row of one record (the column order of :data:`UPSERT_TRACE`)."""
    root = trace.root_span
    rollup = trace.rollup
    return (
        trace.trace_id,
        trace.name,
        trace.service_name,
        trace.start_time,
        trace.end_time,
        trace.duration_ms,
        trace.status.value,
        root.span_id if root is not None else None,
        root.kind.value if root is not None else None,
        trace.remote_parent_id,
        trace.user_id,
        trace.session_id,
        len(trace.spans),
        trace.error_count,
        rollup.llm_calls,
        rollup.unpriced_llm_calls,
        rollup.no_usage_llm_calls,
        rollup.estimated_llm_calls,
        rollup.input_tokens,
        rollup.output_tokens,
        rollup.cache_read_tokens,
        rollup.cache_write_tokens,
        rollup.reasoning_tokens,
        rollup.cost_usd,
        _json_object(trace.attributes),
    )


_TRACE_COLUMNS = (
    "trace_id",
    "name",
    "service_name",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "root_span_id",
    "root_kind",
    "remote_parent_id",
    "user_id",
    "session_id",
    "span_count",
    "error_count",
    "llm_calls",
    "unpriced_llm_calls",
    "no_usage_llm_calls",
    "estimated_llm_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "attributes",
)
_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "status",
    "start_time",
    "end_time",
    "duration_ms",
    "latency_ms",
    "model_name",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "counts_usage",
    "llm_call",
    "cost_status",
    "agent_name",
    "attributes",
    "events",
)
# Summed when parts of one trace arrive separately (from several services).
_SUMMED = (
    "span_count",
    "error_count",
    "llm_calls",
    "unpriced_llm_calls",
    "no_usage_llm_calls",
    "estimated_llm_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# The same trace id may arrive from several processes (a distributed trace continued with
# propagation.extract): rows merge. The part without a remote parent names the trace.
_OURS_IS_ROOT = "(traces.remote_parent_id IS NOT NULL AND excluded.remote_parent_id IS NULL)"
UPSERT_TRACE = (
    "INSERT "
    + _insert("traces", _TRACE_COLUMNS)
    + " ON CONFLICT (trace_id) DO UPDATE SET "
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
            # A v1 row may hold attributes SQLite's JSON rejects (NaN): start over then.
            "attributes = json_patch(CASE WHEN json_valid(traces.attributes) "
            "THEN traces.attributes ELSE '{}' END, excluded.attributes)",
        ]
    )
)
UPSERT_SPAN = "INSERT OR REPLACE " + _insert("spans", _SPAN_COLUMNS)
