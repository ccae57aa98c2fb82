"""ObservabilityDashboard: incremental aggregation of sealed TraceRecords, sketch percentiles,
self time, rollups, and the queue that folds traces in off the caller's thread."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import agentos_obs._internal.guard as _guard
from agentos_obs.dashboard import ObservabilityDashboard
from agentos_obs.errors import ConfigurationError
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    CostStatus,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Tracer,
    TraceRecord,
)

BASE_NS = 1_700_000_000_000_000_000  # epoch ns origin of hand-built records
_ids = itertools.count(1)


def ms(value: float) -> int:
    return BASE_NS + round(value * 1e6)


def new_id() -> str:
    return f"{next(_ids):016x}"


class Build:
    """Records of one trace with exact times, built through the public constructors (as the
    store reads traces back)."""

    def __init__(self, name: str = "t") -> None:
        self.name = name
        self.trace_id = f"{next(_ids):032x}"
        self.spans: list[SpanRecord] = []

    def span(
        self,
        name: str,
        kind: SpanKind,
        start_ms: float,
        end_ms: float,
        parent: SpanRecord | None = None,
        *,
        span_id: str | None = None,
        parent_id: str | None = None,
        **facts: Any,
    ) -> SpanRecord:
        record = SpanRecord(
            span_id=span_id or new_id(),
            trace_id=self.trace_id,
            parent_id=parent.span_id if parent is not None else parent_id,
            name=name,
            kind=kind,
            status=facts.pop("status", SpanStatus.OK),
            start_time=ms(start_ms),
            end_time=ms(end_ms),
            **facts,
        )
        self.spans.append(record)
        return record

    def call(
        self,
        parent: SpanRecord | None,
        start_ms: float,
        end_ms: float,
        cost: float | None,
        **kw: Any,
    ) -> SpanRecord:
        """A counted LLM call with 10 input tokens."""
        status = CostStatus.UNPRICED if cost is None else CostStatus.PRICED
        return self.span(
            "llm", SpanKind.LLM, start_ms, end_ms, parent,
            llm_call=True, usage=Usage(10, 0), cost_usd=cost, cost_status=status, **kw,
        )  # fmt: skip

    def record(self, **kwargs: Any) -> TraceRecord:
        return TraceRecord(trace_id=self.trace_id, spans=self.spans, name=self.name, **kwargs)


def timed_trace(duration_ms: float, name: str = "t") -> TraceRecord:
    build = Build(name)
    build.span(name, SpanKind.AGENT, 0.0, duration_ms)
    return build.record()


def record_unpriced(tracer: Tracer, span: Any, model: str, input_tokens: int, output: int) -> None:
    """Usage of a model the price catalogue does not know: the call's cost is unknown."""
    tracer.record_usage(span, model=model, input_tokens=input_tokens, output_tokens=output)
    assert span.cost_usd is None, f"{model} has a price: pick a model the catalogue lacks"


def row(rows: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    (match,) = [r for r in rows if r["stage"] == stage]
    return match


def exact_quantile(sorted_values: list[float], q: float) -> float:
    # DDSketch's definition of the q-quantile: the value at rank floor(q * (n - 1)).
    return sorted_values[int(q * (len(sorted_values) - 1))]


@pytest.fixture
def stack() -> tuple[Tracer, ObservabilityDashboard]:
    tracer = Tracer()
    dashboard = ObservabilityDashboard(tracer)
    tracer.add_exporter(dashboard.record_trace)
    return tracer, dashboard


# -- percentiles ---------------------------------------------------------------------------
def test_percentiles_over_all_traces_within_relative_accuracy() -> None:
    rng = random.Random(7)
    durations = [rng.lognormvariate(5.0, 1.2) for _ in range(5000)]
    dashboard = ObservabilityDashboard(relative_accuracy=0.01)
    for d in durations:
        dashboard.record_trace(timed_trace(d))

    summary = dashboard.get_summary()
    values = sorted(durations)
    for key, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        exact = exact_quantile(values, q)
        assert summary["duration"][key] == pytest.approx(exact, rel=0.01 + 1e-9), key
    # The average is a running sum, exact up to float rounding (ns-rounded inputs).
    assert summary["duration"]["avg_ms"] == pytest.approx(sum(durations) / 5000, rel=1e-6)
    assert summary["relative_accuracy"] == summary["duration"]["relative_accuracy"] == 0.01
    assert summary["trace_count"] == 5000


def test_percentiles_are_not_those_of_the_last_100_traces() -> None:
    dashboard = ObservabilityDashboard()
    for _ in range(4900):
        dashboard.record_trace(timed_trace(1000.0))
    for _ in range(100):
        dashboard.record_trace(timed_trace(1.0))
    duration = dashboard.get_summary()["duration"]
    assert duration["p50_ms"] == pytest.approx(1000.0, rel=0.01)
    assert duration["p95_ms"] == pytest.approx(1000.0, rel=0.01)
    assert duration["avg_ms"] == pytest.approx((4900 * 1000.0 + 100) / 5000)


def test_stage_percentiles_match_exact_within_accuracy() -> None:
    rng = random.Random(11)
    dashboard = ObservabilityDashboard(relative_accuracy=0.02)
    llm_durations: list[float] = []
    for _ in range(1000):
        build = Build("q")
        root = build.span("q", SpanKind.CHAIN, 0.0, 500.0)
        d = rng.uniform(1.0, 400.0)
        llm_durations.append(d)
        build.span("llm", SpanKind.LLM, 10.0, 10.0 + d, root)
        dashboard.record_trace(build.record())
    llm = row(dashboard.get_latency_breakdown(), "llm")
    values = sorted(llm_durations)
    assert llm["count"] == 1000
    assert llm["p50_ms"] == pytest.approx(exact_quantile(values, 0.5), rel=0.02 + 1e-9)
    assert llm["p99_ms"] == pytest.approx(exact_quantile(values, 0.99), rel=0.02 + 1e-9)
    assert llm["total_ms"] == pytest.approx(sum(llm_durations), rel=1e-6)


# -- error rate ----------------------------------------------------------------------------
def test_error_rate_counts_traces_not_spans(stack: tuple[Tracer, ObservabilityDashboard]) -> None:
    tracer, dashboard = stack
    for i in range(10):
        with tracer.start_trace(f"q{i}"):
            for j in range(5):
                try:
                    with tracer.start_span(f"step{j}", SpanKind.TOOL):
                        # Trace 0 fails in three spans, trace 1 in one: two failed traces.
                        if (i == 0 and j < 3) or (i == 1 and j == 0):
                            raise RuntimeError("tool failed")
                except RuntimeError:
                    pass
    summary = dashboard.get_summary()
    assert summary["trace_count"] == 10
    assert summary["error_traces"] == 2
    assert summary["error_rate"] == pytest.approx(0.2)  # the prototype said 4 / 50 = 0.08


# -- self time and nesting -----------------------------------------------------------------
def test_self_time_subtracts_the_union_of_overlapping_children() -> None:
    build = Build("q")
    parent = build.span("agent", SpanKind.AGENT, 0.0, 100.0)
    build.span("a", SpanKind.TOOL, 10.0, 50.0, parent)
    build.span("b", SpanKind.TOOL, 30.0, 70.0, parent)  # overlaps a
    build.span("c", SpanKind.TOOL, 90.0, 120.0, parent)  # outlives the parent
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(build.record())

    rows = dashboard.get_latency_breakdown()
    agent = row(rows, "agent")
    # Children cover [10, 70) and [90, 100) of the parent: 70 ms busy, 30 ms self.
    assert agent["self_total_ms"] == pytest.approx(30.0)
    assert agent["self_p50_ms"] == pytest.approx(30.0, rel=0.01)
    assert agent["total_ms"] == pytest.approx(100.0)
    tool = row(rows, "tool")
    assert tool["count"] == 3
    assert tool["self_total_ms"] == pytest.approx(40.0 + 40.0 + 30.0)  # leaves: self = all
    # Concurrent siblings are span-time: each counts in full.
    assert tool["total_ms"] == pytest.approx(110.0)


async def test_self_time_of_concurrent_children_from_asyncio_gather(
    stack: tuple[Tracer, ObservabilityDashboard],
) -> None:
    tracer, dashboard = stack

    async def child(i: int) -> None:
        with tracer.start_span(f"tool{i}", SpanKind.TOOL):
            await asyncio.sleep(0.02)

    with tracer.start_span("agent", SpanKind.AGENT):
        await asyncio.gather(*(child(i) for i in range(4)))

    rows = dashboard.get_latency_breakdown()
    agent, tool = row(rows, "agent"), row(rows, "tool")
    assert tool["count"] == 4
    # Summing four overlapping children would exceed the parent and clamp self time to 0;
    # the union is at most the parent, so self time stays within [0, parent - longest child].
    # The parent runs a little code before the first child and after the last one, so its
    # self time is > 0 with the union (a sum of children would clamp it to 0).
    longest_child_floor = tool["p99_ms"] / 1.01
    assert 0.0 < agent["self_total_ms"] <= agent["total_ms"] - longest_child_floor + 1e-6
    assert tool["self_total_ms"] == pytest.approx(sum_tool_time(rows), rel=1e-9)


def sum_tool_time(rows: list[dict[str, Any]]) -> float:
    tool = row(rows, "tool")
    return float(tool["avg_ms"] * tool["count"])


def test_nested_spans_of_one_kind_are_not_double_counted_in_total() -> None:
    build = Build("q")
    outer = build.span("supervisor", SpanKind.AGENT, 0.0, 100.0)
    inner = build.span("researcher", SpanKind.AGENT, 10.0, 60.0, outer)
    build.span("llm", SpanKind.LLM, 20.0, 40.0, inner)
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(build.record())

    agent = row(dashboard.get_latency_breakdown(), "agent")
    assert agent["count"] == 2
    assert agent["avg_ms"] == pytest.approx(75.0)  # per-span distribution: 100 and 50
    assert agent["total_ms"] == pytest.approx(100.0)  # the prototype summed 150
    assert agent["self_total_ms"] == pytest.approx(50.0 + 30.0)

    by_name = dashboard.get_latency_breakdown(by="name")
    assert row(by_name, "researcher")["total_ms"] == pytest.approx(50.0)
    assert row(by_name, "researcher")["kind"] == "agent"
    assert row(by_name, "supervisor")["total_ms"] == pytest.approx(100.0)


def test_recursive_span_of_one_name_counts_once_in_total_by_name() -> None:
    build = Build("q")
    outer = build.span("solve", SpanKind.CHAIN, 0.0, 80.0)
    build.span("solve", SpanKind.CHAIN, 10.0, 50.0, outer)
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(build.record())
    solve = row(dashboard.get_latency_breakdown(by="name"), "solve")
    assert solve["count"] == 2
    assert solve["total_ms"] == pytest.approx(80.0)


def test_latency_breakdown_rejects_unknown_grouping() -> None:
    with pytest.raises(ValueError, match="by must be"):
        ObservabilityDashboard().get_latency_breakdown(by="model")  # type: ignore[arg-type]


# -- malformed and unfinished traces ------------------------------------------------------
def test_span_whose_parent_is_not_in_the_trace_is_a_root() -> None:
    build = Build("q")
    root = build.span("root", SpanKind.CHAIN, 0.0, 100.0)
    build.span("inner", SpanKind.CHAIN, 10.0, 20.0, root)
    build.span("orphan", SpanKind.CHAIN, 5.0, 40.0, parent_id="f" * 16)  # parent never seen
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(build.record())

    assert dashboard.get_summary()["span_distribution"] == {"chain": 3}
    chain = row(dashboard.get_latency_breakdown(), "chain")
    assert chain["count"] == 3
    assert chain["total_ms"] == pytest.approx(100.0 + 35.0)  # two outermost chains
    assert chain["self_total_ms"] == pytest.approx(90.0 + 10.0 + 35.0)


def test_parent_cycle_does_not_hang() -> None:
    build = Build("q")
    a_id, b_id = new_id(), new_id()
    build.span("a", SpanKind.CHAIN, 0.0, 10.0, span_id=a_id, parent_id=b_id)
    build.span("b", SpanKind.CHAIN, 1.0, 9.0, span_id=b_id, parent_id=a_id)
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(build.record())
    assert row(dashboard.get_latency_breakdown(), "chain")["count"] == 2


def test_a_finished_live_trace_is_taken_through_its_record_a_running_one_refused(
    stack: tuple[Tracer, ObservabilityDashboard],
) -> None:
    tracer, dashboard = stack
    span = tracer.begin_span("still running", SpanKind.LLM, use_context=False)
    trace = span.trace
    assert trace is not None
    with pytest.raises(TypeError, match="finished trace"):
        dashboard.record_trace(trace)  # e.g. a snapshot mid-run
    assert dashboard.trace_count == 0
    tracer.end_span(span)  # exported normally (as its TraceRecord)
    dashboard.record_trace(trace)  # finished: its record is used
    summary = dashboard.get_summary()
    assert summary["trace_count"] == 2
    assert summary["llm_calls"] == 2  # an LLM span without usage is still a call
    assert summary["no_usage_llm_calls"] == 2


# -- usage rollups -------------------------------------------------------------------------
def test_tokens_cost_and_rollups_by_model_agent_user_session(
    stack: tuple[Tracer, ObservabilityDashboard],
) -> None:
    tracer, dashboard = stack
    with tracer.start_trace("q1", attributes={"user.id": "alice", "session.id": "s1"}):
        with tracer.start_span("planner", SpanKind.AGENT):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call(
                    "gpt-4o", 1000, 200, cost_usd=0.01, cache_read_tokens=400, reasoning_tokens=50
                )
            with tracer.start_span("researcher", SpanKind.AGENT):
                with tracer.start_span("call", SpanKind.LLM):
                    tracer.record_llm_call("claude", 300, 30, cost_usd=0.002)
    with tracer.start_trace("q2", attributes={"user.id": "bob"}):
        with tracer.start_span("chain", SpanKind.CHAIN) as chain:
            # Usage on the chain *and* on its LLM child: only the innermost counts.
            tracer.record_usage(
                chain, model="gpt-4o", input_tokens=999, output_tokens=999, cost_usd=9.0
            )
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.001)
            with tracer.start_span("call", SpanKind.LLM) as unpriced:
                record_unpriced(tracer, unpriced, "mystery-model", 50, 5)

    s = dashboard.get_summary()
    assert s["tokens"] == {
        "input": 1450,
        "output": 245,
        "cache_read": 400,
        "cache_write": 0,
        "reasoning": 50,
        "total": 1695,
    }
    assert s["llm_calls"] == 4
    assert s["unpriced_llm_calls"] == 1
    assert s["cost"]["total_usd"] == pytest.approx(0.013)
    assert s["cost"]["avg_per_trace_usd"] == pytest.approx(0.0065)

    by_model = s["by_model"]
    assert by_model["gpt-4o"]["llm_calls"] == 2
    assert by_model["gpt-4o"]["cost_usd"] == pytest.approx(0.011)
    assert by_model["gpt-4o"]["traces"] == 2
    assert by_model["mystery-model"]["unpriced_llm_calls"] == 1
    assert by_model["mystery-model"]["cost_usd"] == 0.0

    by_agent = s["by_agent"]
    assert by_agent["planner"]["cost_usd"] == pytest.approx(0.01)
    assert by_agent["researcher"]["cost_usd"] == pytest.approx(0.002)  # nearest agent wins
    assert by_agent["(none)"]["llm_calls"] == 2

    assert s["by_user"]["alice"]["cost_usd"] == pytest.approx(0.012)
    assert s["by_user"]["alice"]["traces"] == 1
    assert s["by_user"]["bob"]["total_tokens"] == 165
    assert s["by_session"]["s1"]["llm_calls"] == 2
    assert s["by_session"]["(none)"]["llm_calls"] == 2
    assert (s["no_usage_llm_calls"], s["estimated_llm_calls"]) == (0, 0)
    assert s["cost_complete"] is False  # the mystery model's cost is unknown
    assert by_model["gpt-4o"]["cost_complete"] is True


def test_agent_name_failed_and_estimated_calls(
    stack: tuple[Tracer, ObservabilityDashboard],
) -> None:
    tracer, dashboard = stack
    exported: list[TraceRecord] = []
    tracer.add_exporter(exported.append, sync=True)
    with tracer.start_trace("q", attributes={"user.id": "alice"}):
        with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.5)
            with pytest.raises(ConnectionError):
                with tracer.start_span("call", SpanKind.LLM, {"llm.request_model": "gpt-4o"}):
                    raise ConnectionError("provider is down")
            with tracer.start_span("call", SpanKind.LLM, {"llm.usage.estimated": True}) as span:
                tracer.record_usage(
                    span, model="claude", input_tokens=20, output_tokens=2, cost_usd=0.25
                )

    s = dashboard.get_summary()
    assert s["llm_calls"] == 3  # the failed call is a call
    assert s["no_usage_llm_calls"] == 1
    assert s["estimated_llm_calls"] == 1
    assert s["unpriced_llm_calls"] == 0
    assert s["cost_complete"] is False
    assert s["cost"]["total_usd"] == pytest.approx(0.75)
    assert set(s["by_agent"]) == {"planner"}  # agent.name, not the span's name
    planner = s["by_agent"]["planner"]
    assert (planner["llm_calls"], planner["no_usage_llm_calls"]) == (3, 1)
    assert planner["estimated_llm_calls"] == 1
    gpt = s["by_model"]["gpt-4o"]
    assert (gpt["llm_calls"], gpt["no_usage_llm_calls"], gpt["cost_complete"]) == (2, 1, False)
    assert s["by_model"]["claude"]["estimated_llm_calls"] == 1
    alice = s["by_user"]["alice"]
    assert (alice["llm_calls"], alice["no_usage_llm_calls"], alice["traces"]) == (3, 1, 1)
    # The dashboard's totals are the trace's own rollup, not a second derivation.
    (trace,) = exported
    assert {k: v for k, v in alice.items() if k not in ("traces", "error_traces")} == (
        trace.rollup.to_dict()
    )
    (recent,) = dashboard.recent_traces()
    assert (recent["llm_calls"], recent["cost_complete"]) == (3, False)


def test_top_n_slowest_and_most_expensive_are_bounded_and_sorted() -> None:
    dashboard = ObservabilityDashboard(top_n=5)
    order = list(range(50))
    random.Random(3).shuffle(order)
    for i in order:
        build = Build(f"t{i}")
        root = build.span(f"t{i}", SpanKind.CHAIN, 0.0, float(i + 1))
        build.call(root, 0.0, 0.5, cost=float(49 - i))  # cheapest = slowest
        dashboard.record_trace(build.record())

    slowest = dashboard.get_summary()["slowest_traces"]
    assert [t["name"] for t in slowest] == ["t49", "t48", "t47", "t46", "t45"]
    assert slowest[0]["duration_ms"] == pytest.approx(50.0)
    assert set(slowest[0]) >= {"trace_id", "name", "duration_ms", "cost_usd"}
    priciest = dashboard.most_expensive_traces()
    assert [t["name"] for t in priciest] == ["t0", "t1", "t2", "t3", "t4"]
    assert priciest[0]["cost_usd"] == pytest.approx(49.0)


def test_recent_traces_ring_is_bounded_newest_first() -> None:
    dashboard = ObservabilityDashboard(recent_capacity=10)
    for i in range(25):
        dashboard.record_trace(timed_trace(1.0, name=f"t{i}"))
    recent = dashboard.recent_traces(limit=100)
    assert [t["name"] for t in recent] == [f"t{i}" for i in range(24, 14, -1)]
    assert [t["name"] for t in dashboard.recent_traces(limit=2)] == ["t24", "t23"]
    assert dashboard.recent_traces(limit=0) == []
    assert dashboard.get_summary()["trace_count"] == 25  # aggregates keep everything


def test_rollups_are_bounded_by_max_keys() -> None:
    tracer = Tracer()
    dashboard = ObservabilityDashboard(tracer, max_keys=2)
    tracer.add_exporter(dashboard)  # the object works as an exporter too
    for user in ("u1", "u2", "u3", "u4"):
        with tracer.start_trace("q", attributes={"user.id": user}):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("m", 1, 1, cost_usd=1.0)
    by_user = dashboard.get_summary()["by_user"]
    assert set(by_user) == {"u1", "u2", "(other)"}
    assert by_user["(other)"]["traces"] == 2
    assert _guard.dropped_counts()["dashboard"] >= 2


# -- summary shape -------------------------------------------------------------------------
def test_empty_dashboard_keeps_prototype_message() -> None:
    dashboard = ObservabilityDashboard(Tracer())
    assert dashboard.get_summary() == {"message": "No traces recorded"}
    assert dashboard.get_latency_breakdown() == []
    assert dashboard.recent_traces() == []


def test_trace_count_is_this_dashboards_total_traces_is_the_tracers() -> None:
    tracer = Tracer()
    with tracer.start_span("before the dashboard", SpanKind.CHAIN):
        pass
    dashboard = ObservabilityDashboard(tracer)
    tracer.add_exporter(dashboard.record_trace)
    with tracer.start_span("after", SpanKind.CHAIN):
        pass
    summary = dashboard.get_summary()
    assert summary["trace_count"] == 1
    assert summary["total_traces"] == 2
    assert set(summary) >= {
        "trace_count",
        "total_traces",
        "error_rate",
        "duration",
        "cost",
        "span_distribution",
        "metrics",
    }
    assert set(summary["duration"]) >= {"p50_ms", "p95_ms", "p99_ms", "avg_ms"}
    assert set(summary["cost"]) == {"total_usd", "avg_per_trace_usd"}


class FakeMetrics:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def collect(self) -> list[dict[str, Any]]:
        if self.fail:
            raise RuntimeError("broken metric")
        return [{"name": "agent_invocations_total", "value": 3.0}]


def test_summary_includes_metrics_collect() -> None:
    dashboard = ObservabilityDashboard(None, FakeMetrics())
    dashboard.record_trace(timed_trace(1.0))
    assert dashboard.get_summary()["metrics"] == [{"name": "agent_invocations_total", "value": 3.0}]


@pytest.mark.usefixtures("lenient")
def test_failing_metrics_collect_is_reported_not_raised() -> None:
    dashboard = ObservabilityDashboard(None, FakeMetrics(fail=True))
    dashboard.record_trace(timed_trace(1.0))
    assert dashboard.get_summary()["metrics"] == []
    assert _guard.failure_counts()["dashboard.metrics"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"relative_accuracy": 0.0},
        {"relative_accuracy": 1.5},
        {"top_n": 0},
        {"recent_capacity": -1},
        {"max_keys": 0},
    ],
)
def test_bad_configuration_raises(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ObservabilityDashboard(**kwargs)


def test_reset_forgets_everything() -> None:
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(timed_trace(5.0))
    dashboard.reset()
    assert dashboard.get_summary() == {"message": "No traces recorded"}
    assert dashboard.trace_count == 0


# -- concurrency ---------------------------------------------------------------------------
def test_concurrent_traces_from_threads_are_all_counted(
    stack: tuple[Tracer, ObservabilityDashboard],
) -> None:
    tracer, dashboard = stack
    per_thread, threads = 200, 8
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            with tracer.start_trace("q", attributes={"user.id": f"user{n}"}):
                with tracer.start_span("agent", SpanKind.AGENT):
                    with tracer.start_span("call", SpanKind.LLM) as span:
                        tracer.record_llm_call("m", 10, 5, cost_usd=0.5)
                        if i % 10 == 0:
                            span.status = SpanStatus.ERROR

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    s = dashboard.get_summary()
    assert s["trace_count"] == per_thread * threads
    assert s["llm_calls"] == per_thread * threads
    assert s["tokens"]["total"] == 15 * per_thread * threads
    assert s["cost"]["total_usd"] == pytest.approx(0.5 * per_thread * threads)
    assert s["error_rate"] == pytest.approx(0.1)
    assert s["span_distribution"] == {"agent": 1600, "llm": 1600}
    assert all(v["traces"] == per_thread for v in s["by_user"].values())
    assert row(dashboard.get_latency_breakdown(), "llm")["count"] == 1600


def test_record_trace_only_queues_and_a_background_thread_folds_in() -> None:
    dashboard = ObservabilityDashboard()
    for _ in range(5):
        dashboard.record_trace(timed_trace(10.0))
    deadline = time.monotonic() + 10
    # No query in between: only the background thread can empty the queue.
    while dashboard.pending_traces and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dashboard.pending_traces == 0  # folded in off the caller's thread
    assert dashboard.trace_count == 5


def test_queries_see_every_trace_recorded_before_them() -> None:
    dashboard = ObservabilityDashboard()
    for i in range(300):
        dashboard.record_trace(timed_trace(float(i + 1)))
    assert dashboard.get_summary()["trace_count"] == 300
    assert dashboard.recent_traces(1)[0]["duration_ms"] == pytest.approx(300.0)


class HeldRecord(TraceRecord):
    """A trace whose fold stops in the middle until the test lets it go: the dashboard
    asks each trace for its per-model rollups while folding it in."""

    __slots__ = ()
    folding = threading.Event()  # set once a fold has reached by_model()
    release = threading.Event()

    def by_model(self) -> Any:
        HeldRecord.folding.set()
        assert HeldRecord.release.wait(10), "the test never released the fold"
        return super().by_model()


@pytest.fixture
def held_trace() -> Iterator[TraceRecord]:
    HeldRecord.folding.clear()
    HeldRecord.release.clear()
    build = Build("held")
    build.call(None, 0.0, 1.0, cost=0.5)
    yield HeldRecord(trace_id=build.trace_id, spans=build.spans, name="held")
    HeldRecord.release.set()


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_a_query_during_a_background_fold_waits_for_the_trace_being_folded(
    held_trace: TraceRecord,
) -> None:
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(held_trace)
    # The background thread has taken the trace off the queue and is folding it in.
    assert HeldRecord.folding.wait(10)
    query, answer = in_thread(lambda: dashboard.get_summary().get("trace_count", 0))
    count, counted = in_thread(lambda: dashboard.trace_count)
    time.sleep(0.05)  # long enough for a query that does not wait to answer 0
    assert answer == [] and counted == []
    HeldRecord.release.set()
    for thread in (query, count):
        thread.join(10)
    assert answer == [1] and counted == [1]


def test_reset_during_a_background_fold_forgets_the_trace_being_folded(
    held_trace: TraceRecord,
) -> None:
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(held_trace)
    assert HeldRecord.folding.wait(10)
    reset, _ = in_thread(dashboard.reset)
    time.sleep(0.05)
    HeldRecord.release.set()  # the fold finishes: the reset must still win
    reset.join(10)
    assert not reset.is_alive()
    assert dashboard.trace_count == 0
    assert dashboard.get_summary() == {"message": "No traces recorded"}


def test_queries_racing_producers_and_the_background_thread_miss_nothing() -> None:
    dashboard = ObservabilityDashboard(max_pending=1_000_000)
    traces = [wide_trace(60) for _ in range(4)]
    recorded = 0  # traces whose record_trace has returned (written by the producer only)
    stop = threading.Event()
    misses: list[tuple[int, int]] = []

    def produce() -> None:
        nonlocal recorded
        for i in range(600):
            dashboard.record_trace(traces[i % len(traces)])
            recorded += 1
            if i % 25 == 0:
                time.sleep(0.003)  # the background thread gets to fold some
        stop.set()

    def query() -> None:
        while not stop.is_set():
            before = recorded
            if dashboard.get_summary().get("trace_count", 0) < before:
                misses.append((before, dashboard.trace_count))
            time.sleep(0.001)

    pool = [threading.Thread(target=produce), *(threading.Thread(target=query) for _ in range(2))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not misses
    assert dashboard.get_summary()["llm_calls"] == 600 * 59


def wide_trace(spans: int) -> TraceRecord:
    build = Build("wide")
    root = build.span("root", SpanKind.CHAIN, 0.0, float(spans + 1))
    for i in range(spans - 1):
        build.call(root, float(i), float(i) + 0.5, cost=0.01)
    return build.record()


def test_pending_traces_are_bounded_without_dropping_any() -> None:
    dashboard = ObservabilityDashboard(max_pending=10)
    for _ in range(95):
        dashboard.record_trace(timed_trace(1.0))
        assert dashboard.pending_traces < 10
    assert dashboard.trace_count == 95
