"""The JSON API's shapes of stored traces and spans, shared by the dashboard and the CLI.

Times are epoch **milliseconds** (JavaScript holds them exactly; the store keeps epoch
nanoseconds). A span is shaped from its read-back :class:`SpanRecord`, so the dashboard,
the CLI and the exporters show the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentos_obs.tracing import SpanRecord

__all__ = ["api_span", "api_trace", "distribution", "nearest_rank"]

_NS_PER_MS = 1_000_000


def ms(ns: int | None) -> float | None:
    return None if ns is None else ns / _NS_PER_MS


def api_trace(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored trace row (a dict with decoded ``attributes``) in the API's shape."""
    return {
        "trace_id": row["trace_id"],
        "name": row.get("name") or "",
        "service_name": row.get("service_name"),
        "status": row.get("status") or "ok",
        "start_ms": ms(row.get("start_time")),
        "end_ms": ms(row.get("end_time")),
        "duration_ms": row.get("duration_ms") or 0.0,
        "span_count": row.get("span_count") or 0,
        "error_count": row.get("error_count") or 0,
        "llm_calls": row.get("llm_calls") or 0,
        "unpriced_llm_calls": row.get("unpriced_llm_calls") or 0,
        "no_usage_llm_calls": row.get("no_usage_llm_calls") or 0,
        "estimated_llm_calls": row.get("estimated_llm_calls") or 0,
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "cache_read_tokens": row.get("cache_read_tokens") or 0,
        "cache_write_tokens": row.get("cache_write_tokens") or 0,
        "reasoning_tokens": row.get("reasoning_tokens") or 0,
        "total_tokens": (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0),
        "cost_usd": row.get("cost_usd") or 0.0,
        "user_id": row.get("user_id"),
        "session_id": row.get("session_id"),
        "models": row.get("models") or [],
        "agents": row.get("agents") or [],
        "attributes": row.get("attributes") or {},
    }


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


def api_span(record: SpanRecord) -> dict[str, Any]:
    """A read-back span record in the API's shape."""
    usage = record.usage
    return {
        "span_id": record.span_id,
        "parent_id": record.parent_id,
        "name": record.name,
        "kind": record.kind.value,
        "status": record.status.value,
        "start_ms": record.start_time / _NS_PER_MS,
        "end_ms": record.end_time / _NS_PER_MS,
        "duration_ms": record.duration_ms,
        "model_name": record.model,
        "provider": record.provider,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": record.cost_usd,
        "cost_status": None if record.cost_status is None else record.cost_status.value,
        "llm_call": record.llm_call,
        "counts_usage": record.counts_usage,
        "agent_name": record.agent,
        "attributes": _plain(record.attributes),
        "events": [
            {
                "name": e.name,
                "time_ms": e.timestamp / _NS_PER_MS,
                "attributes": _plain(e.attributes),
            }
            for e in record.events
        ],
    }


def nearest_rank(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile, the store's definition (an observed value)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n * q)
    return sorted_values[int(rank) - 1]


def distribution(values: list[float]) -> dict[str, float | None]:
    values.sort()
    return {
        "p50": nearest_rank(values, 0.50),
        "p95": nearest_rank(values, 0.95),
        "p99": nearest_rank(values, 0.99),
        "avg": sum(values) / len(values) if values else None,
        "total": sum(values),
    }
