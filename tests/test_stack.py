"""The default stack: lazy creation, configure() in place, validation, wiring."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentos_obs as obs
from agentos_obs import ConfigurationError, SpanKind
from agentos_obs.stack import reset_stack


@pytest.fixture(autouse=True)
def fresh_default() -> Iterator[None]:
    reset_stack()
    yield
    reset_stack()


def test_get_stack_is_lazy_and_shared() -> None:
    stack = obs.get_stack()
    assert obs.get_stack() is stack and obs.get_tracer() is stack.tracer
    tracer, metrics, logger, dashboard = stack  # unpacks like the prototype's tuple
    assert metrics is stack.metrics and logger is stack.logger
    assert tracer is stack.tracer and dashboard is stack.dashboard


def test_stack_wires_metrics_dashboard_and_cost() -> None:
    stack = obs.create_observability_stack("wired")
    tracer = stack.tracer
    with tracer.start_span("agent", SpanKind.AGENT), tracer.start_span("llm", SpanKind.LLM):
        tracer.record_llm_call("gpt-4o-mini", 1000, 100, provider="openai")
    assert stack.metrics.counter("agent_invocations_total").value == 1
    assert stack.metrics.counter("llm_calls_total").value == 1
    assert stack.dashboard.get_summary()["trace_count"] == 1
    assert stack.cost.summary()["total_cost"] > 0


def test_configure_changes_the_default_in_place() -> None:
    stack = obs.get_stack()
    tracer = stack.tracer
    seen: list[obs.Trace] = []
    configured = obs.configure(
        service_name="svc",
        capture_content=True,
        max_content_length=10,
        exporters=[seen.append],
        price_overrides={"house-model": {"input": 1.0, "output": 2.0}},
    )
    assert configured is stack and stack.tracer is tracer
    assert tracer.config.service_name == "svc" and tracer.config.capture_content is True
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call("house-model", 1_000_000, 1_000_000)
    assert span.cost_usd == pytest.approx(3.0)
    tracer.force_flush()  # configured exporters run behind a queue
    assert len(seen) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sampling_ratio": 2.0},
        {"service_name": ""},
        {"exporters": [42]},
        {"price_overrides": {"m": {"input": -1}}},
        {"budgets": ["not a budget"]},
        {"store": 3.5},
    ],
)
def test_bad_configuration_is_refused_before_anything_changes(kwargs: dict[str, object]) -> None:
    stack = obs.get_stack()
    before = (stack.tracer.config, list(stack.tracer.exporters), stack.tracer.span_processors)
    with pytest.raises(ConfigurationError):
        obs.configure(**kwargs)  # type: ignore[arg-type]
    after = (stack.tracer.config, list(stack.tracer.exporters), stack.tracer.span_processors)
    assert after[0] is before[0] and after[1:] == before[1:]


def test_configure_store_and_metrics_port(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    stack = obs.configure(store=str(db), metrics_port=0)
    with stack.tracer.start_span("agent", SpanKind.AGENT):
        pass
    stack.store.flush()
    assert [t["name"] for t in stack.store.list_traces()] == ["agent"]
    assert stack.metrics_port
    body = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics").read()
    assert b"agent_invocations_total" in body
