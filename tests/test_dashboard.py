"""ObservabilityDashboard: incremental aggregation, sketch percentiles, self time, rollups."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import agentos_obs._internal.guard as _guard
from agentos_obs.dashboard import ObservabilityDashboard
from agentos_obs.errors import ConfigurationError
from agentos_obs.tracing import Span, SpanKind, SpanStatus, Trace, Tracer

# Monotonic origin of hand-built spans: in the past, so an open span "runs until now".
BASE_NS = time.perf_counter_ns() - 60 * 10**9


def ms(value: float) -> int:
    return BASE_NS + round(value * 1e6)


def make_span(
    trace: Trace,
    name: str,
    kind: SpanKind,
    start_ms: float,
    end_ms: float | None,
    parent: Span | None = None,
) -> Span:
    """A span with exact monotonic times, linked both ways like the tracer links them."""
    span = Span(
        name, kind, trace_id=trace.trace_id, parent_id=None if parent is None else parent.span_id
    )
    span._start_mono = ms(start_ms)
    span._end_mono = None if end_ms is None else ms(end_ms)
    span._trace = trace
    span._parent = parent
    if parent is not None:
        parent.children.append(span)
    trace.spans.append(span)
    if trace.root_span is None:
        trace.root_span = span
        trace._start_mono = span._start_mono
        trace._end_mono = span._end_mono
    return span


def timed_trace(duration_ms: float, name: str = "t") -> Trace:
    trace = Trace(name=name)
    make_span(trace, name, SpanKind.AGENT, 0.0, duration_ms)
    return trace


def record_unpriced(span: Span, model: str, input_tokens: int, output_tokens: int) -> None:
    """What Tracer.record_usage leaves on a span when the model has no known price
    (set by hand so these tests do not depend on the price catalog)."""
    span.model_name = model
    span.input_tokens, span.output_tokens = input_tokens, output_tokens
    span.cost_usd = None
    span._shadow_ancestors()


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
        trace = Trace(name="q")
        root = make_span(trace, "q", SpanKind.CHAIN, 0.0, 500.0)
        d = rng.uniform(1.0, 400.0)
        llm_durations.append(d)
        make_span(trace, "llm", SpanKind.LLM, 10.0, 10.0 + d, parent=root)
        dashboard.record_trace(trace)
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
    trace = Trace(name="q")
    parent = make_span(trace, "agent", SpanKind.AGENT, 0.0, 100.0)
    make_span(trace, "a", SpanKind.TOOL, 10.0, 50.0, parent=parent)
    make_span(trace, "b", SpanKind.TOOL, 30.0, 70.0, parent=parent)  # overlaps a
    make_span(trace, "c", SpanKind.TOOL, 90.0, 120.0, parent=parent)  # outlives the parent
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(trace)

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
    trace = Trace(name="q")
    outer = make_span(trace, "supervisor", SpanKind.AGENT, 0.0, 100.0)
    inner = make_span(trace, "researcher", SpanKind.AGENT, 10.0, 60.0, parent=outer)
    make_span(trace, "llm", SpanKind.LLM, 20.0, 40.0, parent=inner)
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(trace)

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
    trace = Trace(name="q")
    outer = make_span(trace, "solve", SpanKind.CHAIN, 0.0, 80.0)
    make_span(trace, "solve", SpanKind.CHAIN, 10.0, 50.0, parent=outer)
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(trace)
    solve = row(dashboard.get_latency_breakdown(by="name"), "solve")
    assert solve["count"] == 2
    assert solve["total_ms"] == pytest.approx(80.0)


def test_latency_breakdown_rejects_unknown_grouping() -> None:
    with pytest.raises(ValueError, match="by must be"):
        ObservabilityDashboard().get_latency_breakdown(by="model")  # type: ignore[arg-type]


# -- open and malformed traces -------------------------------------------------------------
def test_trace_with_open_spans_is_recorded_without_crashing() -> None:
    trace = Trace(name="q")
    root = make_span(trace, "root", SpanKind.CHAIN, 0.0, 100.0)
    make_span(trace, "stream", SpanKind.LLM, 60.0, None, parent=root)  # never ended
    dangling = make_span(trace, "pending", SpanKind.TOOL, 5.0, None)
    dangling.parent_id = "0" * 15 + "1"  # a parent that is not in the trace
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(trace)

    summary = dashboard.get_summary()
    assert summary["open_spans"] == 2
    assert summary["span_distribution"] == {"chain": 1, "llm": 1, "tool": 1}
    rows = dashboard.get_latency_breakdown()
    assert [r["stage"] for r in rows] == ["chain"]  # open spans have no duration yet
    # The open child still covers [60, 100) of its ended parent.
    assert rows[0]["self_total_ms"] == pytest.approx(60.0)


def test_parent_cycle_does_not_hang() -> None:
    trace = Trace(name="q")
    a = make_span(trace, "a", SpanKind.CHAIN, 0.0, 10.0)
    b = make_span(trace, "b", SpanKind.CHAIN, 1.0, 9.0, parent=a)
    a.parent_id = b.span_id
    dashboard = ObservabilityDashboard()
    dashboard.record_trace(trace)
    assert row(dashboard.get_latency_breakdown(), "chain")["count"] == 2


def test_open_spans_from_a_live_tracer(stack: tuple[Tracer, ObservabilityDashboard]) -> None:
    tracer, dashboard = stack
    span = tracer.begin_span("still running", SpanKind.LLM, use_context=False)
    trace = span.trace
    assert trace is not None
    dashboard.record_trace(trace)  # e.g. a UI snapshot of an active trace
    assert dashboard.get_summary()["open_spans"] == 1
    tracer.end_span(span)  # exported normally afterwards
    assert dashboard.get_summary()["trace_count"] == 2


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
                record_unpriced(unpriced, "mystery-model", 50, 5)

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


def test_top_n_slowest_and_most_expensive_are_bounded_and_sorted() -> None:
    dashboard = ObservabilityDashboard(top_n=5)
    order = list(range(50))
    random.Random(3).shuffle(order)
    for i in order:
        trace = Trace(name=f"t{i}")
        root = make_span(trace, f"t{i}", SpanKind.CHAIN, 0.0, float(i + 1))
        llm = make_span(trace, "llm", SpanKind.LLM, 0.0, 0.5, parent=root)
        llm.input_tokens, llm.cost_usd = 10, float(49 - i)  # cheapest = slowest
        llm._shadow_ancestors()
        dashboard.record_trace(trace)

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


class ReadLog(list[Span]):
    """A trace's span list that records which threads read it (the dashboard reads a
    trace's spans when it folds the trace into its aggregates)."""

    def __init__(self, spans: list[Span], readers: set[int]) -> None:
        super().__init__(spans)
        self.readers = readers

    def __iter__(self) -> Iterator[Span]:
        self.readers.add(threading.get_ident())
        return super().__iter__()


def test_record_trace_only_queues_and_a_background_thread_folds_in() -> None:
    dashboard = ObservabilityDashboard()
    readers: list[set[int]] = []
    for _ in range(5):
        trace = timed_trace(10.0)
        readers.append(set())
        trace.spans = ReadLog(trace.spans, readers[-1])
        dashboard.record_trace(trace)
    me = threading.get_ident()
    assert not any(me in seen for seen in readers)  # nothing folded on the caller's thread
    deadline = time.monotonic() + 10
    while not all(readers) and time.monotonic() < deadline:
        time.sleep(0.01)  # no query meanwhile: a query would fold them in itself
    assert all(readers), "the background thread did not fold the traces in"
    assert not any(me in seen for seen in readers)
    # Public reads see all five, even if the drainer is still folding the last one in.
    assert dashboard.trace_count == 5
    assert dashboard.get_summary()["trace_count"] == 5


def test_queries_see_every_trace_recorded_before_them() -> None:
    dashboard = ObservabilityDashboard()
    for i in range(300):
        dashboard.record_trace(timed_trace(float(i + 1)))
    assert dashboard.get_summary()["trace_count"] == 300
    assert dashboard.recent_traces(1)[0]["duration_ms"] == pytest.approx(300.0)


def test_pending_traces_are_bounded_without_dropping_any() -> None:
    dashboard = ObservabilityDashboard(max_pending=10)
    for _ in range(95):
        dashboard.record_trace(timed_trace(1.0))
        assert len(dashboard._pending) < 10
    assert dashboard.trace_count == 95
