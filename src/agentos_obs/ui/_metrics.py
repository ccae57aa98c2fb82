"""``/metrics`` of the dashboard: Prometheus metrics derived from the store (all time).

These describe what the store holds, not a live process: gauges (retention can make them go
down) named ``agentos_store_*`` so they never collide with the live counters an instrumented
app exposes on its own ``/metrics`` (``agentos_llm_*`` and friends). Trace duration is a
summary with ``quantile="0.5"`` / ``"0.95"`` / ``"0.99"`` (nearest rank), ``_count`` and
``_sum``, as Prometheus' summary convention has it.

Bounded like the in-process metrics: at most :data:`MAX_MODEL_LABELS` model values (the
models with the highest cost, then the most calls); every other model is summed into the
label value ``other``. A scrape therefore costs the same with 100 or 100,000 models. Built
per scrape by a custom collector with prometheus-client's exposition (text or OpenMetrics
by the ``Accept`` header).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agentos_obs.store import StoreReader

__all__ = ["MAX_MODEL_LABELS", "OTHER", "StoreCollector", "render_store_metrics"]

MAX_MODEL_LABELS = 200  # the in-process metrics' default max_label_values
OTHER = "other"  # the in-process metrics' overflow value
_NONE = "(none)"
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
_SUMMED = ("cost_usd", "calls", "unpriced_llm_calls", *(f"{t}_tokens" for t in _TOKEN_TYPES))


def _model_rows(reader: StoreReader, cap: int) -> dict[str, dict[str, float]]:
    """Per model label: the top ``cap`` models, and ``other`` for the rest (their totals
    minus the top models'), in one bounded page of the breakdown."""
    page = reader.breakdown_page("model", limit=cap, with_latency=False)
    labels: dict[str, dict[str, float]] = {}

    def add(label: str, row: dict[str, Any], sign: float = 1.0) -> None:
        slot = labels.setdefault(label, dict.fromkeys(_SUMMED, 0.0))
        for field in _SUMMED:
            slot[field] += sign * float(row[field] or 0)

    for row in page.rows:
        add(_NONE if row["key"] is None else str(row["key"]), row)
    if page.total_rows > len(page.rows):
        add(OTHER, page.totals)
        for row in page.rows:
            add(OTHER, row, -1.0)
        other = labels[OTHER]
        for field in _SUMMED:  # float sums: never report a tiny negative rest
            other[field] = max(0.0, other[field])
    return labels


class StoreCollector:
    """A prometheus-client collector reading the store on every ``collect()``."""

    def __init__(self, reader: StoreReader, max_model_labels: int = MAX_MODEL_LABELS) -> None:
        self._reader = reader
        self._cap = max_model_labels

    def collect(self) -> Iterator[Metric]:
        summary = self._reader.summary()
        traces = GaugeMetricFamily(
            "agentos_store_traces", "Traces in the store, by outcome", labels=["outcome"]
        )
        failed = summary["error_count"]
        traces.add_metric(["failed"], failed)
        traces.add_metric(["ok"], summary["trace_count"] - failed)
        yield traces
        yield GaugeMetricFamily(
            "agentos_store_spans", "Spans in the store", value=summary["span_count"]
        )
        latency = summary["latency_ms"]
        duration = Metric(
            "agentos_store_trace_duration_seconds",
            "Trace duration over the store: quantiles (nearest rank), count and sum",
            "summary",
        )
        for quantile, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
            if latency[key] is not None:
                duration.add_sample(duration.name, {"quantile": quantile}, latency[key] / 1000.0)
        duration.add_sample(f"{duration.name}_count", {}, float(summary["trace_count"]))
        duration.add_sample(f"{duration.name}_sum", {}, latency["sum"] / 1000.0)
        yield duration

        cost = GaugeMetricFamily(
            "agentos_store_cost_usd", "Cost of priced LLM calls in the store, USD", labels=["model"]
        )
        calls = GaugeMetricFamily(
            "agentos_store_llm_calls", "LLM calls in the store", labels=["model"]
        )
        unpriced = GaugeMetricFamily(
            "agentos_store_unpriced_llm_calls",
            "LLM calls whose model has no known price",
            labels=["model"],
        )
        tokens = GaugeMetricFamily(
            "agentos_store_tokens", "Tokens in the store by type", labels=["model", "type"]
        )
        for model, row in _model_rows(self._reader, self._cap).items():
            cost.add_metric([model], row["cost_usd"])
            calls.add_metric([model], row["calls"])
            unpriced.add_metric([model], row["unpriced_llm_calls"])
            for kind in _TOKEN_TYPES:
                tokens.add_metric([model, kind], row[f"{kind}_tokens"])
        yield from (cost, calls, unpriced, tokens)


def render_store_metrics(reader: StoreReader, accept: str) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(reader))  # type: ignore[arg-type]
    encoder: Any
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
