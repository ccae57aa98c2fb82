"""Metrics: a registry on prometheus_client (labels, exposition, multi-process mode,
exemplars) and the default span metrics fed by every finished span."""

from __future__ import annotations

from agentos_obs.metrics._registry import (
    GENAI_DURATION_BUCKETS,
    GENAI_TOKEN_BUCKETS,
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    MetricsCollector,
    MetricsRegistry,
    MetricType,
    PendingCounter,
    PendingHistogram,
    SeriesBatch,
    is_multiprocess,
    multiprocess_registry,
)
from agentos_obs.metrics._span_metrics import (
    LLM_COST_USD_BUCKETS,
    SPAN_DURATION_BUCKETS,
    TOKEN_TYPES,
    SpanMetricsProcessor,
)

__all__ = [
    "GENAI_DURATION_BUCKETS",
    "GENAI_TOKEN_BUCKETS",
    "LLM_COST_USD_BUCKETS",
    "SPAN_DURATION_BUCKETS",
    "TOKEN_TYPES",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "MetricType",
    "MetricsCollector",
    "MetricsRegistry",
    "PendingCounter",
    "PendingHistogram",
    "SeriesBatch",
    "SpanMetricsProcessor",
    "is_multiprocess",
    "multiprocess_registry",
]
