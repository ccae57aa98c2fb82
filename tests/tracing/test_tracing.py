"""Tracer behaviour; the prototype's tracing defects pinned (DESIGN.md defects 1-5, 9-12)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentos_obs import testing
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.tracing import (
    NoopTracer,
    Span,
    SpanKind,
    SpanStatus,
    Trace,
    Tracer,
    TracerConfig,
    current_span,
    use_span,
)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


def collect(tracer: Tracer) -> list[Trace]:
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    return traces


# -- ids, times --------------------------------------------------------------------------


def test_ids_follow_w3c_trace_context(tracer: Tracer) -> None:  # defect 12
    traces = collect(tracer)
    with tracer.start_span("a") as span:
        pass
    assert TRACE_ID.match(span.trace_id) and span.trace_id != "0" * 32
    assert SPAN_ID.match(span.span_id) and span.span_id != "0" * 16
    assert traces[0].trace_id == span.trace_id


def test_times_are_epoch_ns_and_duration_is_monotonic(
    tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:  # defect 3
    before = time.time_ns()
    with tracer.start_span("a") as span:
        # A wall-clock jump backwards must not produce a negative duration.
        monkeypatch.setattr(time, "time_ns", lambda: before - 10**12)
        time.sleep(0.002)
    monkeypatch.undo()
    assert span.start_time >= before
    assert span.end_time is not None and span.end_time >= span.start_time
    assert span.duration_ms >= 2.0
    assert span.end_time - span.start_time == pytest.approx(span.duration_ms * 1e6, abs=1)


def test_set_attribute_exists(tracer: Tracer) -> None:  # defect 4
    with tracer.start_span("agent", SpanKind.AGENT) as span:
        span.set_attribute("user_id", "123")
    assert span.attributes["user_id"] == "123"


# -- trees -----------------------------------------------------------------------------


def test_nested_spans_form_a_tree_in_one_trace(tracer: Tracer) -> None:
    traces = collect(tracer)
    with tracer.start_trace("run") as trace:
        with tracer.start_span("agent", SpanKind.AGENT) as agent:
            with tracer.start_span("llm", SpanKind.LLM) as llm:
                pass
            with tracer.start_span("tool", SpanKind.TOOL) as tool:
                pass
    assert traces == [trace.record]
    assert [s.name for s in trace.spans] == ["agent", "llm", "tool"]
    assert trace.root_span is agent
    assert agent.parent_id is None
    assert llm.parent_id == agent.span_id and tool.parent_id == agent.span_id
    assert agent.children == [llm, tool]
    assert {s.trace_id for s in trace.spans} == {trace.trace_id}


def test_span_outside_a_trace_starts_its_own_trace(tracer: Tracer) -> None:  # defect 2
    traces = collect(tracer)
    with tracer.start_span("lonely", SpanKind.TOOL) as span:
        with tracer.start_span("child", SpanKind.LLM) as child:
            pass
    assert TRACE_ID.match(span.trace_id)
    assert len(traces) == 1 and traces[0].root_span is span.record
    assert child.trace_id == span.trace_id and child.parent_id == span.span_id
    with tracer.start_span("second") as second:
        pass
    assert second.trace_id != span.trace_id and len(traces) == 2


def test_each_trace_exported_once_when_it_ends(tracer: Tracer) -> None:
    traces = collect(tracer)
    with tracer.start_span("root"):
        with tracer.start_span("child"):
            assert traces == []
        assert traces == []
    assert len(traces) == 1
    assert tracer.trace_count == 1 and tracer.active_trace_count == 0


def test_child_ending_after_its_parent_keeps_its_data(tracer: Tracer) -> None:
    traces = collect(tracer)
    root = tracer.begin_span("root", SpanKind.CHAIN)
    child = tracer.begin_span("stream", SpanKind.LLM, parent=root)
    tracer.end_span(root)
    assert traces == []  # the trace waits for its open child
    tracer.record_usage(child, model="m", input_tokens=10, output_tokens=5)
    tracer.end_span(child)
    assert len(traces) == 1
    assert traces[0].total_tokens == 15
    assert child.ended and child.record in traces[0].spans


def test_end_span_is_idempotent(tracer: Tracer) -> None:
    traces = collect(tracer)
    span = tracer.begin_span("x")
    assert tracer.end_span(span) is True
    first_end = span.end_time
    assert tracer.end_span(span, status=SpanStatus.ERROR) is False
    assert span.end_time == first_end and span.status is SpanStatus.OK
    assert len(traces) == 1


def test_begin_span_nests_under_the_callers_active_span(tracer: Tracer) -> None:
    with tracer.start_span("planner", SpanKind.AGENT) as planner:
        framework_root = tracer.begin_span("RunnableSequence", SpanKind.CHAIN)
        detached = tracer.begin_span("other", use_context=False)
    assert framework_root.parent_id == planner.span_id
    assert framework_root.trace_id == planner.trace_id
    assert detached.parent_id is None and detached.trace_id != planner.trace_id
    tracer.end_span(framework_root)
    tracer.end_span(detached)


def test_spans_of_another_tracer_do_not_capture_ours(tracer: Tracer) -> None:
    other = Tracer("other")
    mine = collect(tracer)
    with other.start_span("foreign"), tracer.start_span("mine") as span:
        pass
    assert span.parent_id is None
    assert len(mine) == 1 and mine[0].spans == (span.record,)


def test_start_trace_block_without_spans_still_exports(tracer: Tracer) -> None:
    traces = collect(tracer)
    with tracer.start_trace("empty") as trace:
        pass
    assert traces == [trace.record] and trace.root_span is None and trace.total_duration_ms >= 0


def test_use_span_restores_a_producing_span(tracer: Tracer) -> None:
    root = tracer.begin_span("query", SpanKind.CHAIN)
    with use_span(root):
        assert current_span() is root
        with tracer.start_span("llm", SpanKind.LLM) as llm:
            pass
    assert current_span() is None
    assert llm.parent_id == root.span_id
    tracer.end_span(root)


def test_sweep_ends_never_ended_spans(tracer: Tracer) -> None:
    traces = collect(tracer)
    root = tracer.begin_span("root")
    child = tracer.begin_span("child", parent=root)
    assert tracer.sweep(max_age_s=3600) == 0
    assert tracer.sweep(max_age_s=0) == 2
    assert child.status is SpanStatus.TIMEOUT and root.status is SpanStatus.TIMEOUT
    assert child.end_time is not None and root.end_time is not None
    assert len(traces) == 1


# -- concurrency (defect 1) ------------------------------------------------------------


def test_300_concurrent_tasks_keep_their_own_parent_chain(tracer: Tracer) -> None:
    traces = collect(tracer)

    async def agent(i: int) -> tuple[Span, Span, Span]:
        with tracer.start_span(f"agent-{i}", SpanKind.AGENT) as a:
            await asyncio.sleep(0)
            with tracer.start_span(f"llm-{i}", SpanKind.LLM) as llm:
                await asyncio.sleep(0.001)
                with tracer.start_span(f"tool-{i}", SpanKind.TOOL) as tool:
                    await asyncio.sleep(0)
            await asyncio.sleep(0)
        return a, llm, tool

    async def main() -> list[tuple[Span, Span, Span]]:
        return await asyncio.gather(*(agent(i) for i in range(300)))

    results = asyncio.run(main())
    assert len(traces) == 300
    assert len({a.trace_id for a, _, _ in results}) == 300
    for i, (a, llm, tool) in enumerate(results):
        assert a.name == f"agent-{i}" and a.parent_id is None
        assert llm.parent_id == a.span_id and llm.trace_id == a.trace_id
        assert tool.parent_id == llm.span_id and tool.trace_id == a.trace_id


def test_16_threads_keep_their_own_parent_chain(tracer: Tracer) -> None:
    traces = collect(tracer)
    barrier = threading.Barrier(16)

    def work(i: int) -> tuple[Span, Span]:
        with tracer.start_span(f"agent-{i}", SpanKind.AGENT) as a:
            barrier.wait()
            for _ in range(20):
                with tracer.start_span(f"llm-{i}", SpanKind.LLM) as llm:
                    time.sleep(0)
        return a, llm

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16)))
    assert len(traces) == 16
    for i, (a, llm) in enumerate(results):
        assert llm.parent_id == a.span_id and llm.name == f"llm-{i}"
        trace = next(t for t in traces if t.trace_id == a.trace_id)
        assert len(trace.spans) == 21
        assert all(s.parent_id == a.span_id for s in trace.spans[1:])


def test_thread_with_copied_context_keeps_the_parent(tracer: Tracer) -> None:
    with tracer.start_span("agent") as agent:
        ctx = contextvars.copy_context()
        holder: list[Span] = []

        def in_thread() -> None:
            with tracer.start_span("worker") as w:
                holder.append(w)

        t = threading.Thread(target=ctx.run, args=(in_thread,))
        t.start()
        t.join()
    assert holder[0].parent_id == agent.span_id


# -- errors ----------------------------------------------------------------------------


def test_exception_marks_error_and_reraises_the_same_object(tracer: Tracer) -> None:
    traces = collect(tracer)
    boom = KeyError("missing")
    with pytest.raises(KeyError) as caught, tracer.start_span("agent") as agent:
        with tracer.start_span("tool", SpanKind.TOOL) as tool:
            raise boom
    assert caught.value is boom
    for span in (agent, tool):
        assert span.status is SpanStatus.ERROR
        assert span.attributes["error.type"] == "KeyError"
        assert span.attributes["error.message"] == "'missing'"
        assert span.events[-1].name == "exception"
    assert traces[0].has_error and traces[0].status is SpanStatus.ERROR


def test_cancellation_is_not_an_error(tracer: Tracer) -> None:
    async def main() -> Span:
        holder: list[Span] = []

        async def slow() -> None:
            with tracer.start_span("slow") as s:
                holder.append(s)
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return holder[0]

    span = asyncio.run(main())
    assert span.status is SpanStatus.CANCELLED


def test_failing_exporter_is_logged_once_counted_and_not_raised(
    tracer: Tracer, lenient: None, caplog: pytest.LogCaptureFixture
) -> None:  # defect 10
    calls: list[Trace] = []

    def broken(trace: Trace) -> None:
        raise RuntimeError("exporter down")

    tracer.add_exporter(broken, sync=True)
    tracer.add_exporter(calls.append, sync=True)
    with caplog.at_level(logging.WARNING, logger="agentos_obs"):
        for _ in range(3):
            with tracer.start_span("a"):
                pass
    assert len(calls) == 3  # later exporters still run
    assert sum(v for k, v in testing.failure_counts().items() if "broken" in k) == 3
    logged = [r for r in caplog.records if "exporter down" in r.getMessage()]
    assert len(logged) == 1


def test_failing_exporter_raises_in_strict_mode(tracer: Tracer) -> None:
    def broken(trace: Trace) -> None:
        raise RuntimeError("exporter down")

    tracer.add_exporter(broken, sync=True)
    with pytest.raises(RuntimeError, match="exporter down"), tracer.start_span("a"):
        pass


def test_failing_processor_never_reaches_the_app(tracer: Tracer, lenient: None) -> None:
    class Broken:
        def on_start(self, span: Span) -> None:
            raise ValueError("start")

        def on_end(self, span: Span) -> None:
            raise ValueError("end")

    tracer.add_span_processor(Broken())
    traces = collect(tracer)
    with tracer.start_span("a") as span:
        result = 42
    assert result == 42 and span.ended and len(traces) == 1
    counts = testing.failure_counts()
    assert any("on_start" in k for k in counts) and any("on_end" in k for k in counts)


def test_budget_exceeded_passes_through_on_start(tracer: Tracer) -> None:
    class Budget:
        def on_start(self, span: Span) -> None:
            if span.kind is SpanKind.LLM:
                raise BudgetExceeded("spent")

    tracer.add_span_processor(Budget())
    traces = collect(tracer)
    with pytest.raises(BudgetExceeded), tracer.start_span("agent"):
        tracer.begin_span("llm", SpanKind.LLM)
    assert len(traces) == 1 and all(s.ended for s in traces[0].spans)


def test_bad_exporter_and_processor_rejected_at_setup(tracer: Tracer) -> None:
    with pytest.raises(ConfigurationError):
        tracer.add_exporter(42)
    with pytest.raises(ConfigurationError):
        tracer.add_span_processor(object())
    with pytest.raises(ConfigurationError):
        TracerConfig(sampling_ratio=1.5)
    with pytest.raises(ConfigurationError):
        TracerConfig(service_name="")


# -- usage and cost --------------------------------------------------------------------


def test_record_llm_call_sets_usage_duration_and_price(tracer: Tracer) -> None:  # defect 5
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call(
            "gpt-x", 1000, 500, duration_ms=123.0, provider="openai", cache_read_tokens=200
        )
    assert (span.model_name, span.input_tokens, span.output_tokens) == ("gpt-x", 1000, 500)
    assert span.provider == "openai" and span.cache_read_tokens == 200
    assert span.attributes["llm.latency_ms"] == 123.0
    assert span.cost_usd == pytest.approx(1.0 + 1.0)


def test_unknown_model_costs_none_not_zero(tracer: Tracer) -> None:  # defect 11
    traces = collect(tracer)
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call("unknown-model", 10, 10)
    assert span.cost_usd is None
    assert span.attributes["llm.cost.unpriced"] is True
    assert traces[0].unpriced_llm_calls == 1 and traces[0].total_cost_usd == 0.0
    assert traces[0].total_tokens == 20


def test_explicit_cost_wins(tracer: Tracer) -> None:
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call("unknown-model", 10, 10, cost_usd=0.5)
    assert span.cost_usd == 0.5 and "llm.cost.unpriced" not in span.attributes


def test_record_llm_call_outside_any_span_is_not_lost(tracer: Tracer) -> None:
    traces = collect(tracer)
    span = tracer.record_llm_call("gpt-x", 10, 20, duration_ms=50)
    assert len(traces) == 1 and traces[0].spans == (span.record,)
    assert span.kind is SpanKind.LLM and span.ended
    assert span.duration_ms == pytest.approx(50, abs=0.01)


def test_trace_totals_do_not_double_count_nested_usage(tracer: Tracer) -> None:
    traces = collect(tracer)
    with tracer.start_span("agent", SpanKind.AGENT):
        # Usage recorded on the agent AND on an inner LLM span: only the innermost counts.
        tracer.record_llm_call("gpt-x", 999, 999, cost_usd=9.0)
        with tracer.start_span("llm1", SpanKind.LLM):
            tracer.record_llm_call("gpt-x", 100, 10, cost_usd=0.1)
        with tracer.start_span("llm2", SpanKind.LLM):
            tracer.record_llm_call("gpt-x", 200, 20, cost_usd=0.2)
    trace = traces[0]
    assert trace.total_tokens == 330
    assert trace.total_cost_usd == pytest.approx(0.3)
    totals = trace.usage_totals()
    assert totals["llm_calls"] == 2 and totals["input_tokens"] == 300
    assert trace.to_dict()["total_tokens"] == 330


def test_record_tool_call_adds_an_event(tracer: Tracer) -> None:
    with tracer.start_span("agent") as span:
        tracer.record_tool_call("search", True, 12.5)
    event = span.events[0]
    assert event.name == "tool_call"
    assert event.attributes == {"tool_name": "search", "success": True, "duration_ms": 12.5}


# -- serialisation -----------------------------------------------------------------------


def test_to_dict_keeps_prototype_keys_and_adds_new_ones(tracer: Tracer) -> None:
    traces = collect(tracer)
    with tracer.start_span("llm", SpanKind.LLM) as span:
        span.add_event("retry", {"n": 1})
        tracer.record_llm_call("gpt-x", 10, 20, provider="openai", reasoning_tokens=5)
    d = span.to_dict()
    prototype = {
        "span_id",
        "parent_id",
        "trace_id",
        "name",
        "kind",
        "duration_ms",
        "status",
        "attributes",
        "model_name",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    }
    added = {
        "provider",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "start_time",
        "end_time",
        "events",
    }
    assert prototype | added <= d.keys()
    assert d["kind"] == "llm" and d["status"] == "ok" and d["reasoning_tokens"] == 5
    assert d["events"][0]["name"] == "retry"
    td = traces[0].to_dict()
    assert {
        "trace_id",
        "total_duration_ms",
        "total_cost_usd",
        "total_tokens",
        "span_count",
        "spans",
    } <= td.keys()
    assert td["span_count"] == 1 and td["total_tokens"] == 30


# -- sampling and NoopTracer (defect 9) ----------------------------------------------------


def test_sampling_ratio_zero_exports_nothing_but_keeps_context() -> None:
    tracer = Tracer(config=TracerConfig(sampling_ratio=0.0))
    traces = collect(tracer)
    with tracer.start_span("a") as a, tracer.start_span("b") as b:
        pass
    assert b.parent_id == a.span_id
    assert traces == [] and tracer.trace_count == 1


def test_sampling_is_decided_from_the_trace_id() -> None:
    tracer = Tracer(config=TracerConfig(sampling_ratio=0.5))
    traces = collect(tracer)
    for _ in range(400):
        with tracer.start_span("a"):
            pass
    assert 100 < len(traces) < 300
    for t in traces:
        assert int(t.trace_id[16:], 16) < (1 << 63)


def test_noop_tracer_context_managers_work_and_record_nothing() -> None:
    tracer = NoopTracer()
    traces = collect(tracer)
    with tracer.start_trace("t") as trace, tracer.start_span("agent", SpanKind.AGENT) as span:
        span.set_attribute("k", "v")
        tracer.record_llm_call("gpt-x", 1, 1)
        tracer.record_tool_call("t", True, 1.0)
    assert isinstance(span, Span) and isinstance(trace, Trace)
    assert traces == [] and current_span() is None


def test_a_hanging_user_exporter_never_blocks_the_app(tracer: Tracer, lenient: None) -> None:
    release = threading.Event()
    seen: list[str] = []

    def hangs(trace: Trace) -> None:
        release.wait(10)
        seen.append(trace.trace_id)

    tracer.add_exporter(hangs)  # default: off the caller's thread, behind a bounded queue
    started = time.perf_counter()
    for _ in range(5):
        with tracer.start_span("a"):
            pass
    assert time.perf_counter() - started < 5  # five traces ended while the exporter hangs
    assert seen == []
    release.set()
    tracer.force_flush()
    assert len(seen) == 5


def test_a_full_user_exporter_queue_drops_and_counts(lenient: None) -> None:
    from agentos_obs.exporters import QueuedExporter

    release = threading.Event()
    queued = QueuedExporter(lambda trace: release.wait(10), name="exporter:stuck", max_queue=2)
    tracer = Tracer("drops")
    tracer.add_exporter(queued)
    for _ in range(10):
        with tracer.start_span("a"):
            pass
    release.set()
    tracer.force_flush()
    assert testing.dropped_counts().get("exporter:stuck", 0) >= 7
