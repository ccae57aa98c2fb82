"""Distributed traces: W3C traceparent in and out, and joining the app's OpenTelemetry span."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.tracing._tracer as tracing
from agentos_obs import propagation
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Trace, Tracer
from agentos_obs.tracing.propagation import (
    RemoteContext,
    extract,
    format_traceparent,
    inject,
    parse_traceparent,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def collect(tracer: Tracer) -> list[Trace]:
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    return traces


# -- parsing --------------------------------------------------------------------------------


def test_parse_and_format_traceparent() -> None:
    context = parse_traceparent(TRACEPARENT, "congo=t61rcWkgMzE")
    assert context == RemoteContext(TRACE_ID, PARENT_ID, True, "congo=t61rcWkgMzE")
    assert context.traceparent == TRACEPARENT
    assert parse_traceparent(f"00-{TRACE_ID}-{PARENT_ID}-00").sampled is False  # type: ignore[union-attr]
    assert parse_traceparent(f"  {TRACEPARENT} ".encode()) == RemoteContext(TRACE_ID, PARENT_ID)
    # A future version may add fields; version 00 may not.
    assert parse_traceparent(f"01-{TRACE_ID}-{PARENT_ID}-01-extra") is not None
    assert format_traceparent(TRACE_ID, PARENT_ID, sampled=False).endswith("-00")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        42,
        "garbage",
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # upper-case hex is not allowed
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-1",
        f"00_{TRACE_ID}_{PARENT_ID}_01",
    ],
)
def test_invalid_traceparents_are_ignored(value: Any) -> None:
    assert parse_traceparent(value) is None


# -- extract --------------------------------------------------------------------------------


def test_extract_continues_the_remote_trace(tracer: Tracer) -> None:
    traces = collect(tracer)
    with extract({"TraceParent": TRACEPARENT}) as context:
        assert context is not None and context.trace_id == TRACE_ID
        with tracer.start_span("handler", SpanKind.AGENT) as root:
            with tracer.start_span("step", SpanKind.TOOL) as step:
                pass
    assert (root.trace_id, root.parent_id) == (TRACE_ID, PARENT_ID)
    assert root.parent is None  # the parent is in another service
    assert (step.trace_id, step.parent_id) == (TRACE_ID, root.span_id)
    assert traces[0].trace_id == TRACE_ID and traces[0].remote_parent_id == PARENT_ID
    with tracer.start_span("after", SpanKind.AGENT) as after:
        pass
    assert after.trace_id != TRACE_ID and after.parent_id is None


def test_extract_applies_to_trace_blocks_integration_spans_and_standalone_calls(
    tracer: Tracer,
) -> None:
    with extract({"traceparent": TRACEPARENT}):
        with tracer.start_trace("block") as block:
            with tracer.start_span("a", SpanKind.CHAIN) as a:
                pass
            with tracer.start_span("b", SpanKind.CHAIN) as b:
                pass
        begun = tracer.begin_span("framework-root", SpanKind.CHAIN)
        tracer.end_span(begun)
        llm = tracer.record_llm_call("gpt-4o", 10, 2, cost_usd=0.0, duration_ms=5)
    assert block.trace_id == TRACE_ID
    assert a.parent_id == b.parent_id == PARENT_ID  # both top-level spans hang off the caller
    assert (begun.trace_id, begun.parent_id) == (TRACE_ID, PARENT_ID)
    assert (llm.trace_id, llm.parent_id) == (TRACE_ID, PARENT_ID)


def test_headers_without_a_valid_traceparent_start_a_new_trace(tracer: Tracer) -> None:
    for headers in ({}, {"traceparent": "nonsense"}, None, [("x", "y")], object()):
        with extract(headers) as context:
            assert context is None
            with tracer.start_span("fresh", SpanKind.AGENT) as span:
                pass
        assert span.trace_id != TRACE_ID and span.parent_id is None


def test_extract_reads_asgi_header_pairs_and_list_values(tracer: Tracer) -> None:
    scope_headers = [(b"host", b"x"), (b"traceparent", TRACEPARENT.encode())]
    with extract(scope_headers) as context:
        assert context == RemoteContext(TRACE_ID, PARENT_ID)
    with extract({"traceparent": [TRACEPARENT]}) as context:
        assert context is not None and context.span_id == PARENT_ID


def test_an_active_agentos_span_wins_over_an_extracted_context(tracer: Tracer) -> None:
    with tracer.start_span("local-root", SpanKind.AGENT) as root:
        with extract({"traceparent": TRACEPARENT}):
            with tracer.start_span("child", SpanKind.TOOL) as child:
                pass
    assert child.trace_id == root.trace_id and child.parent_id == root.span_id


async def test_concurrent_requests_keep_their_own_remote_parents(tracer: Tracer) -> None:
    async def handle(i: int) -> tuple[str, str | None, str, str]:
        trace_id = f"{i + 1:032x}"
        parent = f"{i + 1:016x}"
        with extract({"traceparent": f"00-{trace_id}-{parent}-01"}):
            await asyncio.sleep(0.001 * (i % 3))
            with tracer.start_span(f"req-{i}", SpanKind.AGENT) as span:
                await asyncio.sleep(0)
        return span.trace_id, span.parent_id, trace_id, parent

    results = await asyncio.gather(*(handle(i) for i in range(50)))
    assert [(got_t, got_p) for got_t, got_p, _, _ in results] == [
        (want_t, want_p) for _, _, want_t, want_p in results
    ]


# -- inject ---------------------------------------------------------------------------------


def test_inject_writes_the_current_span(tracer: Tracer) -> None:
    assert inject() == {}  # nothing to propagate
    with tracer.start_span("client", SpanKind.AGENT) as span:
        headers = inject({"Traceparent": "stale", "accept": "json"})
    assert headers == {"accept": "json", "traceparent": f"00-{span.trace_id}-{span.span_id}-01"}
    other = tracer.begin_span("explicit", SpanKind.TOOL)
    assert inject(span=other)["traceparent"] == f"00-{other.trace_id}-{other.span_id}-01"
    tracer.end_span(other)


def test_inject_marks_unsampled_traces() -> None:
    tracer = Tracer("sampled-out", config=tracing.TracerConfig(sampling_ratio=0.0))
    with tracer.start_span("x", SpanKind.CHAIN) as span:
        assert inject()["traceparent"].endswith("-00")
    assert span.trace is not None and not span.trace.sampled


def test_tracestate_is_passed_on_and_contexts_pass_through(tracer: Tracer) -> None:
    incoming = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
    with extract(incoming):
        # No span yet: forward the caller's context unchanged.
        assert inject() == incoming
        with tracer.start_trace("block"):
            assert inject() == incoming
            with tracer.start_span("work", SpanKind.TOOL) as span:
                outgoing = inject()
    assert outgoing == {
        "traceparent": f"00-{TRACE_ID}-{span.span_id}-01",
        "tracestate": "vendor=abc",
    }


def test_two_services_make_one_trace_in_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "shared.db")
    front, back = Tracer("front"), Tracer("back")
    front.add_exporter(store)
    back.add_exporter(store)

    def backend(headers: dict[str, str]) -> str:
        with extract(headers):
            with back.start_span("backend-agent", SpanKind.AGENT):
                with back.start_span("chat", SpanKind.LLM) as llm:
                    back.record_usage(llm, model="m", input_tokens=7, output_tokens=1, cost_usd=0.5)
        return "done"

    with front.start_span("frontend", SpanKind.AGENT) as root:
        with front.start_span("call-backend", SpanKind.TOOL) as call:
            assert backend(inject()) == "done"
    store.flush()
    (row,) = store.list_traces()
    assert row["trace_id"] == root.trace_id and row["name"] == "frontend"
    assert row["span_count"] == 4 and row["cost_usd"] == 0.5
    full = store.get_trace(root.trace_id)
    assert full is not None
    parents = {s["name"]: s["parent_id"] for s in full["spans"]}
    assert parents["backend-agent"] == call.span_id
    store.close()


# -- OpenTelemetry ----------------------------------------------------------------------------


@pytest.fixture
def otel_tracer() -> Iterator[Any]:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    provider = sdk.TracerProvider()
    yield provider.get_tracer("app")
    provider.shutdown()


def test_agentos_traces_join_the_apps_active_opentelemetry_span(
    tracer: Tracer, otel_tracer: Any
) -> None:
    traces = collect(tracer)
    with otel_tracer.start_as_current_span("GET /ask") as http_span:
        context = http_span.get_span_context()
        with tracer.start_span("agent", SpanKind.AGENT) as agent:
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                pass
            headers = inject()
    assert agent.trace_id == f"{context.trace_id:032x}"
    assert agent.parent_id == f"{context.span_id:016x}"
    assert llm.parent_id == agent.span_id
    assert traces[0].remote_parent_id == agent.parent_id
    assert headers["traceparent"] == f"00-{agent.trace_id}-{agent.span_id}-01"
    with tracer.start_span("outside", SpanKind.AGENT) as outside:
        pass
    assert outside.trace_id != agent.trace_id and outside.parent_id is None


def test_inject_with_only_an_opentelemetry_span(otel_tracer: Any) -> None:
    with otel_tracer.start_as_current_span("client") as span:
        context = span.get_span_context()
        headers = inject()
    assert headers["traceparent"] == (f"00-{context.trace_id:032x}-{context.span_id:016x}-01")


def test_an_extracted_context_wins_over_the_opentelemetry_span(
    tracer: Tracer, otel_tracer: Any
) -> None:
    with otel_tracer.start_as_current_span("server"):
        with extract({"traceparent": TRACEPARENT}):
            with tracer.start_span("agent", SpanKind.AGENT) as agent:
                pass
    assert (agent.trace_id, agent.parent_id) == (TRACE_ID, PARENT_ID)


def test_a_failing_provider_is_reported_not_raised(
    lenient: None, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> tuple[str, str] | None:
        raise RuntimeError("provider bug")

    monkeypatch.setattr(tracing, "_remote_parent_provider", broken)
    with tracer.start_span("still works", SpanKind.AGENT) as span:
        pass
    assert span.parent_id is None
    from agentos_obs import testing

    assert testing.failure_counts()["propagation.remote_parent"] == 1


def test_opentelemetry_is_not_imported_by_the_core() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from agentos_obs.tracing import Tracer
        from agentos_obs.tracing import SpanKind
        import agentos_obs.tracing.propagation as p
        t = Tracer("x")
        with p.extract({{"traceparent": "{TRACEPARENT}"}}):
            with t.start_span("a", SpanKind.AGENT) as s:
                h = p.inject()
        assert s.parent_id == "{PARENT_ID}", s.parent_id
        print(any(m.startswith("opentelemetry") for m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


def test_new_traces_ask_the_remote_context_by_default() -> None:
    # No import side effect: the tracer itself consults the extracted or OpenTelemetry context.
    assert tracing._remote_parent_provider is propagation.remote_parent
