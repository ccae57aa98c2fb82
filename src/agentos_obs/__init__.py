"""agentos_obs: observability for LLM agent pipelines.

One callback handler (or one ``instrument()`` call) turns every LangChain and LlamaIndex
run into a tree of spans with tokens and cost on each LLM call, rolled up by agent, trace,
user and model; the same data feeds Prometheus metrics, JSON logs, a dashboard, an
embedded SQLite store and OpenTelemetry backends.

This module imports nothing optional: the framework integrations live in
``agentos_obs.integrations.*`` and the OTLP exporter in ``agentos_obs.exporters.otlp``.
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
import os as _os
from typing import TYPE_CHECKING, Any

# The stdlib convention for libraries: the application decides where our log records go.
# Without a handler here, an app that configured no logging would get our warnings on
# stderr through `logging.lastResort`.
_logging.getLogger("agentos_obs").addHandler(_logging.NullHandler())

# Names resolve lazily (PEP 562): `import agentos_obs` stays cheap, and the price catalogue,
# prometheus_client and ddsketch load only when first used.
_EXPORTS = {
    "instrument": ".integrations._auto",
    "uninstrument": ".integrations._auto",
    "BudgetAlert": ".cost",
    "CostAnalytics": ".cost",
    "ObservabilityDashboard": ".dashboard",
    "AgentOSObsError": ".errors",
    "BudgetExceeded": ".errors",
    "ConfigurationError": ".errors",
    "LogLevel": ".logs",
    "StructuredLogger": ".logs",
    "correlate_logging": ".logs",
    "Counter": ".metrics",
    "Gauge": ".metrics",
    "Histogram": ".metrics",
    "MetricsCollector": ".metrics",
    "MetricsRegistry": ".metrics",
    "PriceCatalog": ".pricing",
    "Span": ".tracing",
    "SpanEvent": ".tracing",
    "SpanKind": ".tracing",
    "SpanStatus": ".tracing",
    "Trace": ".tracing",
    "CostStatus": ".tracing",
    "SpanRecord": ".tracing",
    "TraceRecord": ".tracing",
    "UsageRollup": ".tracing",
    "ObservabilityStack": ".stack",
    "configure": ".stack",
    "create_observability_stack": ".stack",
    "get_stack": ".stack",
    "get_tracer": ".stack",
    "NoopTracer": ".tracing",
    "Tracer": ".tracing",
    "TracerConfig": ".tracing",
    "current_span": ".tracing",
    "current_trace": ".tracing",
    "Usage": ".pricing",
}

if TYPE_CHECKING:
    from agentos_obs.cost import BudgetAlert, CostAnalytics
    from agentos_obs.dashboard import ObservabilityDashboard
    from agentos_obs.errors import AgentOSObsError, BudgetExceeded, ConfigurationError
    from agentos_obs.integrations._auto import instrument, uninstrument
    from agentos_obs.logs import LogLevel, StructuredLogger, correlate_logging
    from agentos_obs.metrics import Counter, Gauge, Histogram, MetricsCollector, MetricsRegistry
    from agentos_obs.pricing import PriceCatalog, Usage
    from agentos_obs.stack import (
        ObservabilityStack,
        configure,
        create_observability_stack,
        get_stack,
        get_tracer,
    )
    from agentos_obs.tracing import (
        NoopTracer,
        Span,
        SpanEvent,
        SpanKind,
        SpanStatus,
        Trace,
        Tracer,
        TracerConfig,
        current_span,
        current_trace,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentos_obs' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "AgentOSObsError",
    "BudgetAlert",
    "BudgetExceeded",
    "ConfigurationError",
    "CostAnalytics",
    "CostStatus",
    "Counter",
    "Gauge",
    "Histogram",
    "LogLevel",
    "MetricsCollector",
    "MetricsRegistry",
    "NoopTracer",
    "ObservabilityDashboard",
    "ObservabilityStack",
    "PriceCatalog",
    "Span",
    "SpanEvent",
    "SpanKind",
    "SpanRecord",
    "SpanStatus",
    "StructuredLogger",
    "Trace",
    "TraceRecord",
    "Tracer",
    "TracerConfig",
    "Usage",
    "UsageRollup",
    "__version__",
    "configure",
    "correlate_logging",
    "create_observability_stack",
    "current_span",
    "current_trace",
    "get_stack",
    "get_tracer",
    "instrument",
    "uninstrument",
]

if _os.environ.get("AGENTOS_OBS_AUTO_INSTRUMENT", "").strip().lower() in ("1", "true", "yes", "on"):
    # Zero-code opt-in (also what `agentos-obs run` uses). Never break the import.
    from agentos_obs._internal.guard import report as _report

    try:
        from agentos_obs.integrations._auto import instrument as _instrument

        _instrument()
    except Exception as _exc:  # pragma: no cover - depends on the environment
        _report("auto_instrument", _exc, reraise_in_strict=False)
