"""SpanMetricsProcessor: real spans through a real Tracer feed the default metrics."""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agentos_obs import testing
from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics import (
    GENAI_TOKEN_BUCKETS,
    LLM_COST_USD_BUCKETS,
    MetricsRegistry,
    SpanMetricsProcessor,
)
from agentos_obs.pricing import Usage
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus, Tracer
from conftest import require_binary


class NoPrices:
    """A price catalogue stand-in that knows no model (every call unpriced)."""

    def cost(self, model: str, usage: object, provider: str | None = None) -> None:
        return None


@pytest.fixture
def registry() -> MetricsRegistry:
    return MetricsRegistry()


@pytest.fixture
def pricing() -> NoPrices:
    return NoPrices()


@pytest.fixture
def tracer(tracer: Tracer, registry: MetricsRegistry) -> Tracer:
    """The shared tracer (unpriced here) with span metrics into ``registry``."""
    tracer.add_span_processor(SpanMetricsProcessor(registry))
    return tracer


def value(registry: MetricsRegistry, name: str, **labels: str) -> float:
    metric = registry.get(name)
    assert metric is not None, name
    if hasattr(metric, "get_count"):
        return float(metric.get_count(**labels))  # histograms: number of observations
    return float(metric.get(**labels))  # type: ignore[union-attr]


def llm_call(
    tracer: Tracer,
    model: str = "gpt-4o",
    provider: str = "openai",
    cost: float | None = 0.01,
    **tokens: int,
) -> None:
    with tracer.start_span(model, SpanKind.LLM) as span:
        tracer.record_usage(
            span,
            model=model,
            provider=provider,
            input_tokens=tokens.get("input_tokens", 100),
            output_tokens=tokens.get("output_tokens", 20),
            cache_read_tokens=tokens.get("cache_read_tokens", 0),
            cache_write_tokens=tokens.get("cache_write_tokens", 0),
            reasoning_tokens=tokens.get("reasoning_tokens", 0),
            cost_usd=cost,
        )


# -- LLM calls ------------------------------------------------------------------------


def test_llm_calls_tokens_and_cost(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("agent", SpanKind.AGENT):
        llm_call(tracer, input_tokens=1000, output_tokens=200, cache_read_tokens=300, cost=0.02)
        llm_call(tracer, input_tokens=500, output_tokens=50, reasoning_tokens=30, cost=0.005)
    labels = {"model": "gpt-4o", "provider": "openai"}
    assert value(registry, "llm_calls_total", **labels, status="ok") == 2
    assert value(registry, "llm_tokens_total", **labels, type="input") == 1500
    assert value(registry, "llm_tokens_total", **labels, type="output") == 250
    assert value(registry, "llm_tokens_total", **labels, type="cache_read") == 300
    assert value(registry, "llm_tokens_total", **labels, type="cache_write") == 0
    assert value(registry, "llm_tokens_total", **labels, type="reasoning") == 30
    assert value(registry, "llm_cost_usd_total", **labels) == pytest.approx(0.025)
    assert value(registry, "llm_call_cost_usd", **labels) == 2
    assert value(registry, "llm_unpriced_calls_total", **labels) == 0
    usage = registry.histogram("llm_token_usage")
    assert usage.bucket_bounds == GENAI_TOKEN_BUCKETS
    assert usage.get_buckets(**labels, type="input")[1024] == 2
    assert usage.get_buckets(**labels, type="input")[256] == 0
    assert usage.get_sum(**labels, type="output") == 250
    cost = registry.histogram("llm_call_cost_usd")
    assert cost.bucket_bounds == LLM_COST_USD_BUCKETS
    assert cost.get_buckets(**labels)[0.005] == 1
    assert cost.get_buckets(**labels)[0.025] == 2
    latency = registry.histogram("llm_latency_seconds")
    assert latency.get_count(**labels) == 2


def test_unpriced_and_unknown_labels(tracer: Tracer, registry: MetricsRegistry) -> None:
    llm_call(tracer, model="my-local-model", provider="", cost=None)
    with tracer.start_span("anonymous", SpanKind.LLM) as span:
        tracer.record_usage(span, model=None, input_tokens=10, output_tokens=1)
    assert (
        value(registry, "llm_unpriced_calls_total", model="my-local-model", provider="unknown") == 1
    )
    assert value(registry, "llm_unpriced_calls_total", model="unknown", provider="unknown") == 1
    assert value(registry, "llm_calls_total", model="unknown", provider="unknown", status="ok") == 1
    assert registry.counter("llm_cost_usd_total").value == 0
    assert registry.histogram("llm_call_cost_usd").count == 0


def test_priced_by_the_real_catalog(registry: MetricsRegistry) -> None:
    tracer = Tracer("test")  # default catalog (genai-prices)
    tracer.add_span_processor(SpanMetricsProcessor(registry))
    llm_call(tracer, model="gpt-4o", provider="openai", cost=None, input_tokens=1000)
    llm_call(tracer, model="no-such-model-xyz", provider="nowhere", cost=None)
    assert value(registry, "llm_cost_usd_total", model="gpt-4o", provider="openai") > 0
    assert value(registry, "llm_unpriced_calls_total", model="gpt-4o", provider="openai") == 0
    unknown = {"model": "no-such-model-xyz", "provider": "nowhere"}
    assert value(registry, "llm_unpriced_calls_total", **unknown) == 1
    assert value(registry, "llm_cost_usd_total", **unknown) == 0


def test_failed_llm_call_without_usage_still_counts(
    tracer: Tracer, registry: MetricsRegistry
) -> None:
    with (
        pytest.raises(TimeoutError),
        tracer.start_span("gpt-4o", SpanKind.LLM) as span,
    ):
        span.model_name, span.provider = "gpt-4o", "openai"
        raise TimeoutError("provider timed out")
    labels = {"model": "gpt-4o", "provider": "openai"}
    assert value(registry, "llm_calls_total", **labels, status="error") == 1
    assert value(registry, "llm_calls_total", **labels, status="ok") == 0
    assert registry.counter("llm_tokens_total").value == 0
    assert value(registry, "llm_unpriced_calls_total", **labels) == 0  # no usage, no price
    assert value(registry, "llm_calls_without_usage_total", **labels) == 1  # unknown, not 0
    assert value(registry, "span_errors_total", kind="llm") == 1
    assert value(registry, "llm_latency_seconds", **labels) == 1


def test_nested_usage_is_not_double_counted(tracer: Tracer, registry: MetricsRegistry) -> None:
    # LlamaIndex achat > chat: both LLM spans, usage on both; only the innermost counts.
    with tracer.start_span("achat", SpanKind.LLM) as outer:
        with tracer.start_span("chat", SpanKind.LLM) as inner:
            tracer.record_usage(
                inner, model="m", provider="p", input_tokens=10, output_tokens=5, cost_usd=0.1
            )
        tracer.record_usage(
            outer, model="m", provider="p", input_tokens=10, output_tokens=5, cost_usd=0.1
        )
    assert inner.counts_usage and not outer.counts_usage
    assert value(registry, "llm_calls_total", model="m", provider="p", status="ok") == 1
    assert value(registry, "llm_tokens_total", model="m", provider="p", type="input") == 10
    assert value(registry, "llm_cost_usd_total", model="m", provider="p") == pytest.approx(0.1)


def test_double_llm_spans_without_usage_count_once(
    tracer: Tracer, registry: MetricsRegistry
) -> None:
    with tracer.start_span("achat", SpanKind.LLM), tracer.start_span("chat", SpanKind.LLM):
        pass
    assert registry.counter("llm_calls_total").value == 1


def test_record_llm_call_latency_and_exemplar(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("agent", SpanKind.AGENT) as agent:
        tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.001, duration_ms=1500)
    standalone = tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.001, duration_ms=300)
    with tracer.start_span("stream", SpanKind.LLM) as streamed:
        tracer.record_usage(streamed, model="gpt-4o", input_tokens=5, output_tokens=5, cost_usd=0)
    labels = {"model": "gpt-4o", "provider": "unknown"}
    # The agent span carries the usage: one call, latency from duration_ms (not the span).
    assert value(registry, "llm_calls_total", **labels, status="ok") == 3
    latency = registry.histogram("llm_latency_seconds")
    assert latency.get_count(**labels) == 3
    assert latency.get_buckets(**labels)[0.32] == 2  # 0.3 s and the fast stream
    assert latency.get_buckets(**labels)[1.28] == 2
    assert latency.get_buckets(**labels)[2.56] == 3  # 1.5 s
    text = registry.to_openmetrics_text()
    for trace_id in (agent.trace_id, standalone.trace_id):
        assert f'trace_id="{trace_id}"' in text
    cost_line = next(
        line for line in text.splitlines() if line.startswith("llm_call_cost_usd_bucket")
    )
    assert 'le="1e-05"' in cost_line and f'trace_id="{streamed.trace_id}"' in cost_line


def test_time_to_first_token_from_the_record(registry: MetricsRegistry) -> None:
    # A record as the store reads it back: the processor takes TTFT from the record only.
    processor = SpanMetricsProcessor(registry)
    processor.on_end(
        SpanRecord(
            span_id="b7ad6b7169203331",
            trace_id="0af7651916cd43dd8448eb211c80319c",
            parent_id=None,
            name="stream",
            kind=SpanKind.LLM,
            status=SpanStatus.OK,
            start_time=1_000_000_000,
            end_time=1_900_000_000,
            attributes={"llm.time_to_first_token_ms": 250.0},
            llm_call=True,
            usage=Usage(5, 5),
            cost_usd=0.0,
            cost_status=CostStatus.PRICED,
            model="gpt-4o",
            provider="openai",
            sanitized=True,  # as stored
        )
    )
    labels = {"model": "gpt-4o", "provider": "openai"}
    ttft = registry.histogram("llm_time_to_first_token_seconds")
    assert ttft.get_count(**labels) == 1
    assert ttft.get_sum(**labels) == pytest.approx(0.25)
    assert registry.histogram("llm_latency_seconds").get_sum(**labels) == pytest.approx(0.9)
    # Exemplars are stamped with the call's end (epoch 1.9 s here), not the time of on_end.
    (line,) = [
        line
        for line in registry.to_openmetrics_text().splitlines()
        if line.startswith("llm_latency_seconds_bucket") and "trace_id" in line
    ]
    assert line.endswith('# {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.9 1.9')


def test_time_to_first_token_of_a_traced_stream(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("stream", SpanKind.LLM) as streamed:
        streamed.set_attribute("llm.time_to_first_token_ms", 250.0)
        tracer.record_usage(streamed, model="gpt-4o", input_tokens=5, output_tokens=5, cost_usd=0)
    ttft = registry.histogram("llm_time_to_first_token_seconds")
    assert ttft.get_sum(model="gpt-4o", provider="unknown") == pytest.approx(0.25)


def test_bad_latency_attributes_are_ignored(tracer: Tracer, registry: MetricsRegistry) -> None:
    for bad in ("fast", float("nan"), -5, True):
        with tracer.start_span("llm", SpanKind.LLM) as span:
            span.set_attribute("llm.latency_ms", bad)
            span.set_attribute("llm.time_to_first_token_ms", bad)
            tracer.record_usage(span, model="m", input_tokens=1, output_tokens=1, cost_usd=-1)
    labels = {"model": "m", "provider": "unknown"}
    latency = registry.histogram("llm_latency_seconds")
    assert latency.get_count(**labels) == 4  # fell back to the span duration
    assert latency.get_sum(**labels) < 60
    assert registry.histogram("llm_time_to_first_token_seconds").count == 0
    assert value(registry, "llm_unpriced_calls_total", **labels) == 4  # negative cost
    assert registry.counter("llm_cost_usd_total").value == 0


# -- agents, tools, errors -------------------------------------------------------------


def test_agent_invocations_latency_and_active_gauges(
    tracer: Tracer, registry: MetricsRegistry
) -> None:
    active_agents = registry.gauge("active_agents")
    with tracer.start_trace("run"):
        with tracer.start_span("planner", SpanKind.AGENT):
            with tracer.start_span("step", SpanKind.AGENT, {"agent.name": "researcher"}):
                assert active_agents.value == 2
                assert "active_traces 1.0" in registry.to_prometheus_text()
            assert active_agents.value == 1
        with tracer.start_span("planner", SpanKind.AGENT):
            pass
    assert value(registry, "agent_invocations_total", agent="planner") == 2
    assert value(registry, "agent_invocations_total", agent="researcher") == 1
    assert value(registry, "agent_latency_seconds", agent="planner") == 2
    assert active_agents.value == 0
    text = registry.to_prometheus_text()
    assert "active_traces 0.0" in text
    assert "traces_total 1.0" in text


def test_active_traces_counts_traces_outliving_their_root(
    tracer: Tracer, registry: MetricsRegistry
) -> None:
    root = tracer.begin_span("root", SpanKind.CHAIN, use_context=False)
    child = tracer.begin_span("late", SpanKind.TOOL, parent=root)
    tracer.end_span(root)
    rows = {r["name"]: r for r in registry.collect()}
    assert rows["active_traces"]["value"] == 1  # the child still runs
    tracer.end_span(child)
    rows = {r["name"]: r for r in registry.collect()}
    assert rows["active_traces"]["value"] == 0
    assert rows["traces_total"]["value"] == 1


def test_attached_mid_span_never_goes_negative(registry: MetricsRegistry) -> None:
    tracer = Tracer("late")
    with tracer.start_span("agent", SpanKind.AGENT):
        tracer.add_span_processor(SpanMetricsProcessor(registry))
    assert registry.gauge("active_agents").value == 0
    assert value(registry, "agent_invocations_total", agent="agent") == 1


def test_tool_calls_from_spans_and_events(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("agent", SpanKind.AGENT):
        with tracer.start_span("search", SpanKind.TOOL):
            pass
        with tracer.start_span("run", SpanKind.TOOL, {"tool.name": "calculator"}):
            tracer.record_tool_call("inner_lookup", success=True, duration_ms=1)  # on the tool
        with pytest.raises(ValueError), tracer.start_span("search", SpanKind.TOOL):
            raise ValueError("bad query")
        tracer.record_tool_call("weather", success=True, duration_ms=12)
        tracer.record_tool_call("weather", success=False, duration_ms=30)
        assert value(registry, "tool_calls_total", tool="weather") == 0  # counted at span end
    tracer.record_tool_call("standalone", success=False, duration_ms=5)  # its own TOOL span
    assert value(registry, "tool_calls_total", tool="search") == 2
    assert value(registry, "tool_errors_total", tool="search") == 1
    assert value(registry, "tool_calls_total", tool="calculator") == 1
    assert value(registry, "tool_calls_total", tool="inner_lookup") == 1
    assert value(registry, "tool_calls_total", tool="weather") == 2
    assert value(registry, "tool_errors_total", tool="weather") == 1
    assert value(registry, "tool_calls_total", tool="standalone") == 1  # not twice
    assert value(registry, "tool_errors_total", tool="standalone") == 1


def test_span_durations_and_errors_by_kind(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("chain", SpanKind.CHAIN):
        with pytest.raises(KeyError), tracer.start_span("retrieve", SpanKind.RETRIEVAL):
            raise KeyError("index")
        with tracer.start_span("memory", SpanKind.MEMORY):
            pass
    cancelled = tracer.begin_span("stream", SpanKind.CHAIN)
    tracer.end_span(cancelled, status=SpanStatus.CANCELLED)
    timed_out = tracer.begin_span("stuck", SpanKind.EMBEDDING)
    tracer.end_span(timed_out, status=SpanStatus.TIMEOUT)
    assert value(registry, "span_duration_seconds", kind="chain") == 2
    assert value(registry, "span_duration_seconds", kind="retrieval") == 1
    assert value(registry, "span_errors_total", kind="retrieval") == 1
    assert value(registry, "span_errors_total", kind="chain") == 0  # cancelled is no failure
    assert value(registry, "span_errors_total", kind="embedding") == 1
    assert value(registry, "span_errors_total", kind="memory") == 0


def test_label_values_are_bounded(registry: MetricsRegistry, lenient: None) -> None:
    tracer = Tracer("t")
    tracer.add_span_processor(SpanMetricsProcessor(registry, max_label_values=2))
    for tool in ("a", "b", "c", "d"):
        with tracer.start_span(tool, SpanKind.TOOL):
            pass
    assert value(registry, "tool_calls_total", tool="a") == 1
    assert value(registry, "tool_calls_total", tool="other") == 2
    assert value(registry, "tool_calls_total", tool="c") == 0
    assert testing.dropped_counts()["span_metrics.labels"] == 2


def test_one_processor_per_registry(registry: MetricsRegistry) -> None:
    SpanMetricsProcessor(registry)
    with pytest.raises(ConfigurationError, match="one processor"):
        SpanMetricsProcessor(registry)
    with pytest.raises(ConfigurationError):
        SpanMetricsProcessor(MetricsRegistry(), max_label_values=0)


def test_one_processor_serves_several_tracers(registry: MetricsRegistry) -> None:
    processor = SpanMetricsProcessor(registry)
    first, second = Tracer("a"), Tracer("b")
    for tracer in (first, second):
        tracer.add_span_processor(processor)
    with first.start_span("x", SpanKind.AGENT), second.start_span("y", SpanKind.AGENT):
        assert "active_traces 2.0" in registry.to_prometheus_text()
    assert "traces_total 2.0" in registry.to_prometheus_text()


# -- concurrency ----------------------------------------------------------------------


async def test_asyncio_gather_counts_every_call(tracer: Tracer, registry: MetricsRegistry) -> None:
    async def one(index: int) -> None:
        with tracer.start_span(f"agent-{index % 5}", SpanKind.AGENT):
            await asyncio.sleep(0)
            llm_call(tracer, input_tokens=10, output_tokens=1, cost=0.5)
            await asyncio.sleep(0)
            tracer.record_tool_call("search", success=index % 2 == 0, duration_ms=1)

    await asyncio.gather(*(one(i) for i in range(200)))
    labels = {"model": "gpt-4o", "provider": "openai"}
    assert value(registry, "llm_calls_total", **labels, status="ok") == 200
    assert value(registry, "llm_tokens_total", **labels, type="input") == 2000
    assert value(registry, "llm_cost_usd_total", **labels) == pytest.approx(100)
    assert value(registry, "tool_calls_total", tool="search") == 200
    assert value(registry, "tool_errors_total", tool="search") == 100
    assert registry.counter("agent_invocations_total").value == 200
    assert registry.gauge("active_agents").value == 0


def test_threads_count_every_call(tracer: Tracer, registry: MetricsRegistry) -> None:
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(150):
            with tracer.start_span("agent", SpanKind.AGENT):
                llm_call(tracer, model=f"m{i % 3}", input_tokens=2, output_tokens=1, cost=0.25)
            if i % 10 == 0:
                registry.to_prometheus_text()  # scrapes while writers write

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(contextvars.copy_context().run, work, w) for w in range(8)]:
            future.result()
    assert registry.counter("llm_calls_total").value == 1200
    assert registry.counter("llm_tokens_total").value == 1200 * 3
    assert registry.counter("llm_cost_usd_total").value == pytest.approx(300)
    assert registry.histogram("llm_token_usage").count == 2400
    assert registry.histogram("span_duration_seconds").buckets[math.inf] == 2400
    assert registry.gauge("active_agents").value == 0


# -- exposition -----------------------------------------------------------------------


@pytest.mark.prometheus
def test_default_metrics_pass_promtool(tracer: Tracer, registry: MetricsRegistry) -> None:
    with tracer.start_span("agent", SpanKind.AGENT):
        llm_call(tracer, cache_read_tokens=10, cost=0.01)
        llm_call(tracer, model="local", cost=None)
        tracer.record_tool_call("search", success=False, duration_ms=3)
        with tracer.start_span("stream", SpanKind.LLM) as span:
            span.set_attribute("llm.time_to_first_token_ms", 40)
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=registry.to_prometheus_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""  # no lint warning
    # promtool reads the 0.0.4 text only; the OpenMetrics text (exemplars) must parse too.
    parsed = {f.name: f for f in text_string_to_metric_families(registry.to_openmetrics_text())}
    assert parsed["llm_latency_seconds"].type == "histogram"
    assert any(s.exemplar for s in parsed["llm_latency_seconds"].samples)


def test_multiprocess_mode_writes_each_span_to_the_files(tmp_path: Path) -> None:
    # Another process reads the files without asking this one: updates are applied at
    # once (SeriesBatch.immediate), not at this process's next scrape.
    worker = textwrap.dedent(
        """
        from agentos_obs.metrics import MetricsRegistry
        from agentos_obs.metrics import SpanMetricsProcessor
        from agentos_obs.metrics import is_multiprocess
        from agentos_obs.tracing import SpanKind
        from agentos_obs.tracing import Tracer
        assert is_multiprocess()
        registry = MetricsRegistry()
        processor = SpanMetricsProcessor(registry)
        tracer = Tracer("worker")
        tracer.add_span_processor(processor)
        with tracer.start_span("agent", SpanKind.AGENT):
            with tracer.start_span("llm", SpanKind.LLM) as span:
                tracer.record_usage(span, model="m", provider="p", input_tokens=7,
                                    output_tokens=3, cost_usd=0.5)
        import os
        os._exit(0)  # no interpreter shutdown: nothing may flush on the way out
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=120)
    from prometheus_client import generate_latest

    from agentos_obs.metrics import multiprocess_registry

    text = generate_latest(multiprocess_registry(str(tmp_path))).decode()
    assert 'llm_calls_total{model="m",provider="p",status="ok"} 2.0' in text
    assert 'llm_tokens_total{model="m",provider="p",type="input"} 14.0' in text
    assert 'llm_cost_usd_total{model="m",provider="p"} 1.0' in text
    assert 'agent_invocations_total{agent="agent"} 2.0' in text
    assert "\nactive_agents 0.0" in text
