"""``/metrics`` of the dashboard: Prometheus gauges derived from the store (all time).

These describe what the store holds, not a live process: they are gauges (retention can make
them go down) named ``agentos_store_*`` so they never collide with the live counters an
instrumented app exposes on its own ``/metrics`` (``agentos_llm_*`` and friends). Built per
scrape by a custom collector with prometheus-client's exposition (text or OpenMetrics by the
``Accept`` header).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agentos_obs.store._reader import StoreReader

__all__ = ["StoreCollector", "render_store_metrics"]

_NONE = "(none)"


class StoreCollector:
    """A prometheus-client collector reading the store on every ``collect()``."""

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader

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
        # A gauge per percentile (label "percentile", not "quantile": that one is reserved
        # for summaries), in seconds as Prometheus names want.
        latency = GaugeMetricFamily(
            "agentos_store_trace_duration_seconds",
            "Trace duration percentiles over the store (nearest rank)",
            labels=["percentile"],
        )
        for percentile in ("50", "95", "99"):
            value = summary["latency_ms"][f"p{percentile}"]
            if value is not None:
                latency.add_metric([percentile], value / 1000.0)
        yield latency

        models = self._reader.breakdown("model")
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
        for row in models:
            model = str(row["key"]) if row["key"] is not None else _NONE
            cost.add_metric([model], row["cost_usd"])
            calls.add_metric([model], row["calls"])
            unpriced.add_metric([model], row["unpriced_llm_calls"])
            for kind in ("input", "output", "cache_read", "cache_write", "reasoning"):
                tokens.add_metric([model, kind], row[f"{kind}_tokens"])
        yield from (cost, calls, unpriced, tokens)


def render_store_metrics(reader: StoreReader, accept: str) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(reader))  # type: ignore[arg-type]
    encoder: Any
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
