"""The public surface: DESIGN.md's names import from agentos_obs, and __all__ is pinned."""

from __future__ import annotations

import subprocess
import sys

import agentos_obs

EXPECTED_ALL = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert agentos_obs.__all__ == EXPECTED_ALL
    assert sorted(agentos_obs.__all__) == agentos_obs.__all__


def test_every_exported_name_resolves() -> None:
    for name in agentos_obs.__all__:
        assert getattr(agentos_obs, name) is not None, name


def test_design_contract_names() -> None:
    obs = agentos_obs
    assert {k.name for k in obs.SpanKind} >= {
        "AGENT",
        "LLM",
        "TOOL",
        "MEMORY",
        "RETRIEVAL",
        "CHAIN",
        "EMBEDDING",
    }
    assert {s.name for s in obs.SpanStatus} >= {"OK", "ERROR", "TIMEOUT"}
    tracer, metrics, logger, dashboard = obs.create_observability_stack("svc")
    assert isinstance(tracer, obs.Tracer) and isinstance(metrics, obs.MetricsRegistry)
    assert isinstance(logger, obs.StructuredLogger)
    assert isinstance(dashboard, obs.ObservabilityDashboard)
    assert issubclass(obs.MetricsCollector, obs.MetricsRegistry)
    assert isinstance(obs.NoopTracer(), obs.Tracer)
    from agentos_obs.integrations import langchain, llama_index

    assert callable(langchain.AgentOSCallbackHandler)
    assert callable(llama_index.AgentOSSpanHandler) and callable(llama_index.AgentOSEventHandler)
    for module in (langchain, llama_index):
        assert callable(module.instrument) and callable(module.uninstrument)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        agentos_obs.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_loads_no_framework_or_optional_dependency() -> None:
    code = (
        "import sys, agentos_obs;"
        "bad = [m for m in ('langchain_core', 'llama_index', 'opentelemetry', 'starlette', 'rich')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
