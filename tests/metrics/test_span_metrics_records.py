"""Span metrics read the sealed records: they agree with the trace's one rollup, including
the cases where the prototype's consumers disagreed (agent name; a failed call)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
from agentos_obs.metrics import TOKEN_TYPES, MetricsRegistry, SpanMetricsProcessor
from agentos_obs.tracing import SpanKind, Tracer, TraceRecord, UsageRollup


class NoPrices:
    """A price catalogue that knows no model: a call costs what it was given, or nothing."""

    def cost(self, model: str, usage: object, provider: str | None = None) -> None:
        return None


class Run:
    """A tracer feeding a fresh registry's default metrics, keeping the trace records."""

    def __init__(self) -> None:
        self.registry = MetricsRegistry()
        self.tracer = Tracer("test", pricing=NoPrices())  # type: ignore[arg-type]
        self.tracer.add_span_processor(SpanMetricsProcessor(self.registry))
        self.traces: list[TraceRecord] = []
        self.tracer.add_exporter(self.traces.append, sync=True)

    def value(self, name: str, **labels: str) -> float:
        metric = self.registry.get(name)
        assert metric is not None, name
        return float(metric.get(**labels))  # type: ignore[union-attr]

    def total(self, name: str) -> float:
        metric = self.registry.get(name)
        assert metric is not None, name
        return float(metric.value)  # type: ignore[union-attr]

    def llm(self, model: str = "gpt-4o", cost: float | None = 0.01, **tokens: int) -> None:
        with self.tracer.start_span("chat", SpanKind.LLM) as span:
            self.tracer.record_usage(
                span,
                model=model,
                provider="openai",
                input_tokens=tokens.get("input_tokens", 100),
                output_tokens=tokens.get("output_tokens", 20),
                cache_read_tokens=tokens.get("cache_read_tokens", 0),
                reasoning_tokens=tokens.get("reasoning_tokens", 0),
                cost_usd=cost,
            )

    def failed_llm(self, model: str = "gpt-4o") -> None:
        with pytest.raises(RuntimeError), self.tracer.start_span("chat", SpanKind.LLM) as span:
            span.model_name, span.provider = model, "openai"
            raise RuntimeError("rate limited")


@pytest.fixture
def run() -> Run:
    return Run()


def test_a_good_and_a_failed_call_are_two_calls_and_one_error(run: Run) -> None:
    with run.tracer.start_trace("ask"):
        run.llm(input_tokens=300, output_tokens=40)
        run.failed_llm()
    labels = {"model": "gpt-4o", "provider": "openai"}
    assert run.total("llm_calls_total") == 2
    assert run.value("llm_calls_total", **labels, status="ok") == 1
    assert run.value("llm_calls_total", **labels, status="error") == 1
    assert run.value("span_errors_total", kind="llm") == 1
    assert run.value("llm_calls_without_usage_total", **labels) == 1
    assert run.value("llm_tokens_total", **labels, type="input") == 300  # the good call's
    assert run.value("llm_unpriced_calls_total", **labels) == 0  # no usage is not "unpriced"
    (trace,) = run.traces
    assert trace.rollup.llm_calls == 2 and trace.rollup.no_usage_llm_calls == 1


def test_an_agent_span_is_labelled_by_its_agent_name(run: Run) -> None:
    with run.tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {attr.AGENT_NAME: "planner"}):
        run.llm()
        with run.tracer.start_span("step", SpanKind.AGENT):  # no agent.name: its own name
            pass
    assert run.value("agent_invocations_total", agent="planner") == 1
    assert run.value("agent_invocations_total", agent="step") == 1
    assert run.registry.histogram("agent_latency_seconds").get_count(agent="planner") == 1
    assert "FunctionAgent.run" not in run.registry.to_prometheus_text()
    (trace,) = run.traces
    assert set(trace.by_agent()) == {"planner"}  # the call's agent, as in cost analytics


def test_calls_without_usage_are_counted_not_shown_as_zero(run: Run) -> None:
    # A provider that reports no usage (a local server, a stream cut short): a call whose
    # tokens and cost are unknown.
    with run.tracer.start_span("chat", SpanKind.LLM) as span:
        span.model_name, span.provider = "llama3", "ollama"
    labels = {"model": "llama3", "provider": "ollama"}
    assert run.value("llm_calls_total", **labels, status="ok") == 1
    assert run.value("llm_calls_without_usage_total", **labels) == 1
    assert run.value("llm_unpriced_calls_total", **labels) == 0
    assert run.total("llm_tokens_total") == 0
    assert run.registry.histogram("llm_token_usage").count == 0  # no 0-token observation
    assert run.registry.histogram("llm_latency_seconds").get_count(**labels) == 1


def test_estimated_calls_are_counted_and_in_the_totals(run: Run) -> None:
    with run.tracer.start_span("chat", SpanKind.LLM, {attr.LLM_USAGE_ESTIMATED: True}) as span:
        run.tracer.record_usage(
            span, model="gpt-4o", provider="openai", input_tokens=50, output_tokens=5, cost_usd=0.2
        )
    with run.tracer.start_span("chat", SpanKind.LLM, {attr.LLM_USAGE_ESTIMATED: True}) as span:
        run.tracer.record_usage(span, model="gpt-4o", provider="openai", input_tokens=7)
    labels = {"model": "gpt-4o", "provider": "openai"}
    assert run.value("llm_estimated_calls_total", **labels) == 1  # priced from an estimate
    assert run.value("llm_unpriced_calls_total", **labels) == 1  # estimated, but no price
    assert run.value("llm_cost_usd_total", **labels) == pytest.approx(0.2)
    assert run.value("llm_tokens_total", **labels, type="input") == 57
    rollup = UsageRollup()
    for trace in run.traces:
        rollup.merge(trace.rollup)
    assert (rollup.estimated_llm_calls, rollup.unpriced_llm_calls) == (1, 1)


def test_metrics_agree_with_the_rollup_by_model(run: Run) -> None:
    for i in range(4):
        with run.tracer.start_trace(f"request-{i}"), run.tracer.start_span("agent", SpanKind.AGENT):
            run.llm("gpt-4o", cost=0.125, input_tokens=1000 + i, cache_read_tokens=200)
            run.llm("o3", cost=0.5, output_tokens=300, reasoning_tokens=250 + i)
            run.llm("local", cost=None)  # unpriced
            if i % 2:
                run.failed_llm("o3")
            with run.tracer.start_span("achat", SpanKind.LLM):  # LlamaIndex double span
                run.llm("gpt-4o", cost=0.25)
            with run.tracer.start_span("chat", SpanKind.LLM) as bare:  # no usage reported
                bare.model_name, bare.provider = "local", "openai"
    by_model: dict[str, UsageRollup] = {}
    for trace in run.traces:
        for model, rollup in trace.by_model().items():
            by_model.setdefault(model, UsageRollup()).merge(rollup)
    assert set(by_model) == {"gpt-4o", "o3", "local"}
    for model, rollup in by_model.items():
        labels = {"model": model, "provider": "openai"}
        calls = sum(
            run.value("llm_calls_total", **labels, status=s) for s in ("ok", "error", "timeout")
        )
        assert calls == rollup.llm_calls, model
        assert run.value("llm_calls_without_usage_total", **labels) == rollup.no_usage_llm_calls
        assert run.value("llm_cost_usd_total", **labels) == pytest.approx(rollup.cost_usd)
        assert run.value("llm_unpriced_calls_total", **labels) == rollup.unpriced_llm_calls
        tokens = {t: run.value("llm_tokens_total", **labels, type=t) for t in TOKEN_TYPES}
        assert tokens == {
            "input": rollup.input_tokens,
            "output": rollup.output_tokens,
            "cache_read": rollup.cache_read_tokens,
            "cache_write": rollup.cache_write_tokens,
            "reasoning": rollup.reasoning_tokens,
        }, model
    no_usage = run.total("llm_calls_without_usage_total")
    assert no_usage == sum(r.no_usage_llm_calls for r in by_model.values()) == 4 + 2
    assert run.total("llm_calls_total") == sum(r.llm_calls for r in by_model.values())


# -- a real LlamaIndex agent ------------------------------------------------------------------


@pytest.fixture
def llama_run() -> Iterator[Run]:
    from agentos_obs.integrations.llama_index import instrument, uninstrument

    run = Run()
    instrument(tracer=run.tracer)
    yield run
    uninstrument()
    assert _guard.failure_counts() == {}


async def test_a_llama_index_function_agent_is_labelled_by_its_name(llama_run: Run) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from li_fakes import UsageFunctionCallingLLM, make_tool

    agent = FunctionAgent(name="planner", tools=[make_tool("adder")], llm=UsageFunctionCallingLLM())
    await agent.run("add two and three")
    (trace,) = llama_run.traces
    assert trace.root_span is not None and trace.root_span.name == "FunctionAgent.run"
    assert llama_run.value("agent_invocations_total", agent="planner") == 1
    assert "FunctionAgent.run" not in llama_run.registry.to_prometheus_text()
    assert llama_run.value("tool_calls_total", tool="adder") == 1
    assert llama_run.total("llm_calls_total") == trace.rollup.llm_calls == 2
    assert llama_run.total("llm_tokens_total") == (
        trace.rollup.input_tokens
        + trace.rollup.output_tokens
        + trace.rollup.cache_read_tokens
        + trace.rollup.cache_write_tokens
        + trace.rollup.reasoning_tokens
    )
    assert set(trace.by_agent()) == {"planner"}
