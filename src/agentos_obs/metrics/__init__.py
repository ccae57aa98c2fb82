"""Metrics: a registry on prometheus_client (labels, exposition, multi-process mode,
exemplars) and the default span metrics fed by every finished span's sealed record.

Modules: ``_registry`` (MetricsRegistry), ``_instruments`` (counters, gauges, histograms
and their labelled children), ``_batch`` (SeriesBatch), ``_buckets`` (bucket bounds),
``_multiprocess``, ``_collectors`` and ``_exposition`` (text formats, ``/metrics`` server),
``_default_metrics`` (the default metric families) and ``_span_metrics``
(SpanMetricsProcessor). prometheus_client is used through its public API
everywhere but ``_prometheus``, the one adapter that writes batched histogram observations
straight into its bucket values, with a public-API fallback chosen at import.
"""

from __future__ import annotations

from agentos_obs.metrics._batch import PendingCounter, PendingHistogram, SeriesBatch
from agentos_obs.metrics._buckets import (
    GENAI_DURATION_BUCKETS,
    GENAI_TOKEN_BUCKETS,
    LLM_COST_USD_BUCKETS,
    SPAN_DURATION_BUCKETS,
)
from agentos_obs.metrics._default_metrics import TOKEN_TYPES
from agentos_obs.metrics._instruments import (
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    MetricType,
)
from agentos_obs.metrics._multiprocess import is_multiprocess, multiprocess_registry
from agentos_obs.metrics._registry import MetricsCollector, MetricsRegistry
from agentos_obs.metrics._span_metrics import SpanMetricsProcessor

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
