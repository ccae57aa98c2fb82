"""SpanMetricsProcessor options: a namespace prefix, LLM latency and TTFT buckets."""

from __future__ import annotations

import math
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics import (
    GENAI_DURATION_BUCKETS,
    SPAN_DURATION_BUCKETS,
    MetricsRegistry,
    SpanMetricsProcessor,
)
from agentos_obs.pricing import Usage
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus, Tracer
from conftest import require_binary

DEFAULT_NAMES = {
    "active_agents",
    "active_traces",
    "agent_invocations_total",
    "agent_latency_seconds",
    "llm_call_cost_usd",
    "llm_calls_total",
    "llm_calls_without_usage_total",
    "llm_cost_usd_total",
    "llm_estimated_calls_total",
    "llm_latency_seconds",
    "llm_time_to_first_token_seconds",
    "llm_token_usage",
    "llm_tokens_total",
    "llm_unpriced_calls_total",
    "span_duration_seconds",
    "span_errors_total",
    "tool_calls_total",
    "tool_errors_total",
    "traces_total",
}


def traced_work(tracer: Tracer) -> None:
    with tracer.start_span("agent", SpanKind.AGENT):
        tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.01, duration_ms=200_000)
        tracer.record_tool_call("search", success=True, duration_ms=3)


def exposed_families(registry: MetricsRegistry) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(registry.to_prometheus_text()):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


# -- namespace ------------------------------------------------------------------------------


def test_the_default_names_are_the_prototypes() -> None:
    registry = MetricsRegistry()
    SpanMetricsProcessor(registry)
    assert set(registry.names) == DEFAULT_NAMES


def test_a_namespace_prefixes_every_default_metric() -> None:
    registry = MetricsRegistry()
    tracer = Tracer("ns")
    tracer.add_span_processor(SpanMetricsProcessor(registry, namespace="agentos"))
    traced_work(tracer)
    assert set(registry.names) == {f"agentos_{name}" for name in DEFAULT_NAMES}
    families = exposed_families(registry)
    assert {f"agentos_{name}" for name in DEFAULT_NAMES} <= families
    assert not DEFAULT_NAMES & families  # traces_total, active_agents: no collision left
    # The health counters are agentos_obs_* already, in every registry: never prefixed.
    assert {"agentos_obs_internal_errors_total", "agentos_obs_dropped_total"} <= families
    calls = registry.counter("agentos_llm_calls_total")
    assert calls.get(model="gpt-4o", provider="unknown", status="ok") == 1
    assert "agentos_traces_total 1.0" in registry.to_prometheus_text()


def test_a_namespace_lets_a_second_processor_share_a_registry() -> None:
    registry = MetricsRegistry()
    SpanMetricsProcessor(registry)
    with pytest.raises(ConfigurationError, match="namespace"):
        SpanMetricsProcessor(registry)
    other = SpanMetricsProcessor(registry, namespace="batch")
    assert other.namespace == "batch"
    with pytest.raises(ConfigurationError, match="one processor"):
        SpanMetricsProcessor(registry, namespace="batch")


@pytest.mark.parametrize("namespace", ["1app", "my-app", "app_", "app:x", "ünï", " ", 3])
def test_bad_namespaces_are_configuration_errors(namespace: object) -> None:
    registry = MetricsRegistry()
    with pytest.raises(ConfigurationError, match="namespace"):
        SpanMetricsProcessor(registry, namespace=namespace)  # type: ignore[arg-type]
    assert registry.names == []  # nothing half-registered: a corrected retry works
    SpanMetricsProcessor(registry, namespace="app")


@pytest.mark.prometheus
def test_namespaced_metrics_pass_promtool() -> None:
    registry = MetricsRegistry()
    tracer = Tracer("ns")
    tracer.add_span_processor(SpanMetricsProcessor(registry, namespace="myapp"))
    traced_work(tracer)
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=registry.to_prometheus_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


# -- buckets --------------------------------------------------------------------------------


def test_long_calls_land_in_inf_with_the_default_buckets() -> None:
    registry = MetricsRegistry()
    tracer = Tracer("b")
    tracer.add_span_processor(SpanMetricsProcessor(registry))
    traced_work(tracer)  # a 200 s call
    latency = registry.histogram("llm_latency_seconds")
    assert latency.bucket_bounds == GENAI_DURATION_BUCKETS
    buckets = latency.get_buckets(model="gpt-4o", provider="unknown")
    assert buckets[81.92] == 0 and buckets[math.inf] == 1


def test_latency_and_ttft_buckets_are_configurable() -> None:
    registry = MetricsRegistry()
    ttft_bounds = (0.05, 0.5, 5.0, 50.0, 500.0)
    processor = SpanMetricsProcessor(
        registry, llm_latency_buckets=SPAN_DURATION_BUCKETS, llm_ttft_buckets=ttft_bounds
    )
    tracer = Tracer("b")
    tracer.add_span_processor(processor)
    traced_work(tracer)
    latency = registry.histogram("llm_latency_seconds")
    assert latency.bucket_bounds == SPAN_DURATION_BUCKETS
    buckets = latency.get_buckets(model="gpt-4o", provider="unknown")
    assert (buckets[163.84], buckets[327.68], buckets[math.inf]) == (0, 1, 1)
    processor.on_end(
        SpanRecord(
            span_id="00f067aa0ba902b7",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            parent_id=None,
            name="think",
            kind=SpanKind.LLM,
            status=SpanStatus.OK,
            start_time=0,
            end_time=400_000_000_000,
            attributes={"llm.time_to_first_token_ms": 120_000},  # a 2-minute think
            llm_call=True,
            usage=Usage(10, 10),
            cost_usd=0.5,
            cost_status=CostStatus.PRICED,
            model="o3",
            provider="openai",
            sanitized=True,
        )
    )
    ttft = registry.histogram("llm_time_to_first_token_seconds")
    assert ttft.bucket_bounds == ttft_bounds
    assert ttft.get_buckets(model="o3", provider="openai") == {
        0.05: 0, 0.5: 0, 5.0: 0, 50.0: 0, 500.0: 1, math.inf: 1,
    }  # fmt: skip
    text = registry.to_prometheus_text()
    assert 'llm_time_to_first_token_seconds_bucket{le="500.0",model="o3",provider="openai"}' in text
    assert 'llm_latency_seconds_bucket{le="655.36",model="o3",provider="openai"} 1.0' in text


def test_a_trailing_inf_bound_is_accepted() -> None:
    registry = MetricsRegistry()
    SpanMetricsProcessor(registry, llm_latency_buckets=[1, 10, math.inf])
    assert registry.histogram("llm_latency_seconds").bucket_bounds == (1.0, 10.0)


@pytest.mark.parametrize(
    "buckets",
    [
        [],
        [math.inf],
        [2, 1],
        [1, 1],
        [0, 1],
        [-1, 1],
        [float("nan")],
        ["x"],
        "1,2",
        None,
        5,
        [True, 2],
        [float(i + 1) for i in range(65)],
    ],
)
@pytest.mark.parametrize("argument", ["llm_latency_buckets", "llm_ttft_buckets"])
def test_bad_buckets_are_configuration_errors(argument: str, buckets: object) -> None:
    registry = MetricsRegistry()
    with pytest.raises(ConfigurationError, match=argument):
        SpanMetricsProcessor(registry, **{argument: buckets})  # type: ignore[arg-type]
    assert registry.names == []
