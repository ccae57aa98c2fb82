"""OTLP export end to end against a real OTLP/HTTP receiver on 127.0.0.1, and its faults."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from records_kit import (
    good_traces,
    hand_built,
    surrogate_name,
    time_beyond_uint64,
    unreadable_attributes,
)

import agentos_obs._internal.guard as _guard
from agentos_obs import testing
from agentos_obs.errors import ConfigurationError
from agentos_obs.exporters.otlp import OTLPExporter, parse_headers
from agentos_obs.tracing import (
    Span,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Trace,
    Tracer,
    TraceRecord,
)
from otlp_receiver import OTLPReceiver, ReceivedSpan

STATUS_UNSET, STATUS_ERROR = 0, 2
KIND_INTERNAL, KIND_CLIENT = 1, 3
FLAG_PARENT_IS_REMOTE = 0x200


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


def exporter_for(receiver: OTLPReceiver, **kw: Any) -> OTLPExporter:
    kw.setdefault("timeout_s", 5)
    kw.setdefault("flush_interval_s", 0.05)
    return OTLPExporter(receiver.endpoint, **kw)


def run_pipeline(tracer: Tracer) -> tuple[Trace, dict[str, Span]]:
    """A research agent: LLM call, failing tool, retrieval, embedding."""
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    spans: dict[str, Span] = {}
    with tracer.start_trace("research", {"user.id": "u-42", "session.id": "sess-7"}):
        with tracer.start_span("planner", SpanKind.AGENT, {"agent.name": "planner"}) as agent:
            spans["agent"] = agent
            with tracer.start_span(
                "ChatAnthropic", SpanKind.LLM, {"llm.request_model": "claude-sonnet-4"}
            ) as llm:
                spans["llm"] = llm
                llm.set_attributes(
                    {
                        "llm.invocation_parameters": json.dumps(
                            {"temperature": 0.2, "max_tokens": 512, "stop": "END"}
                        ),
                        "llm.finish_reason": "end_turn",
                        "llm.streaming": True,
                        "llm.input_messages": json.dumps(
                            [
                                {"role": "system", "content": "be brief"},
                                {"role": "human", "content": "hi"},
                            ]
                        ),
                        "llm.output_messages": json.dumps({"role": "ai", "content": "hello"}),
                    }
                )
                tracer.record_usage(
                    llm, model="claude-sonnet-4-20250514", provider="anthropic",
                    input_tokens=1200, output_tokens=300, cache_read_tokens=200,
                    cache_write_tokens=100, reasoning_tokens=40,
                )  # fmt: skip
                llm.add_event("first_token", {"delay_ms": 12.5})
            try:
                with tracer.start_span(
                    "search", SpanKind.TOOL, {"tool.name": "web_search", "tool.call_id": "call_1"}
                ) as tool:
                    spans["tool"] = tool
                    raise TimeoutError("search backend timed out")
            except TimeoutError:
                pass
            with tracer.start_span("vector lookup", SpanKind.RETRIEVAL) as retrieval:
                spans["retrieval"] = retrieval
                retrieval.set_attributes(
                    {
                        "retrieval.query": "otlp",
                        "retrieval.top_scores": [0.9, 0.5],
                        "retrieval.documents": json.dumps(
                            [
                                {"page_content": "OTLP is a protocol", "metadata": {"src": "a"}},
                                {"page_content": "second"},
                            ]
                        ),
                    }
                )
            with tracer.start_span("embed", SpanKind.EMBEDDING) as embedding:
                spans["embedding"] = embedding
                tracer.record_usage(
                    embedding, model="text-embedding-3-small", provider="openai", input_tokens=8
                )
    tracer.remove_exporter(traces.append)
    return traces[0], spans


def test_spans_arrive_with_exact_ids_parents_times_and_both_vocabularies(
    receiver: OTLPReceiver, tracer: Tracer
) -> None:
    exporter = exporter_for(receiver)
    tracer.add_exporter(exporter)
    trace, ours = run_pipeline(tracer)
    assert exporter.flush()
    assert receiver.wait_for_spans(5)
    got = {span.span_id: span for span in receiver.spans}
    assert set(got) == {s.span_id for s in trace.spans}
    for span in trace.spans:
        received = got[span.span_id]
        assert received.trace_id == trace.trace_id == span.trace_id
        assert received.parent_span_id == (span.parent_id or "")
        assert (received.start_time, received.end_time) == (span.start_time, span.end_time)
        assert received.resource["service.name"] == "svc"
        assert received.scope == "agentos_obs"
        # Every span can be filtered by user and session in Phoenix or Langfuse.
        assert received.attributes["user.id"] == "u-42"
        assert received.attributes["session.id"] == "sess-7"
        assert received.attributes["gen_ai.conversation.id"] == "sess-7"

    agent = got[ours["agent"].span_id]
    assert agent.name == "invoke_agent planner" and agent.kind == KIND_INTERNAL
    assert agent.parent_span_id == ""
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "planner"
    assert agent.attributes["openinference.span.kind"] == "AGENT"
    assert agent.status_code == STATUS_UNSET
    assert agent.attributes["langfuse.trace.name"] == "research"  # the start_trace block
    assert "langfuse.trace.name" not in got[ours["llm"].span_id].attributes

    llm = got[ours["llm"].span_id]
    assert llm.name == "chat claude-sonnet-4" and llm.kind == KIND_CLIENT
    expected_llm = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.response.model": "claude-sonnet-4-20250514",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 40,
        "gen_ai.usage.cost": pytest.approx(1.8),
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.request.stream": True,
        "gen_ai.response.finish_reasons": ["end_turn"],
        "openinference.span.kind": "LLM",
        "llm.model_name": "claude-sonnet-4-20250514",
        "llm.provider": "anthropic",
        "llm.system": "anthropic",
        "llm.token_count.prompt": 1200,
        "llm.token_count.completion": 300,
        "llm.token_count.total": 1500,
        "llm.token_count.prompt_details.cache_read": 200,
        "llm.token_count.prompt_details.cache_write": 100,
        "llm.token_count.completion_details.reasoning": 40,
        "llm.cost.total": pytest.approx(1.8),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "be brief",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "hello",
        "llm.invocation_parameters": json.dumps(
            {"temperature": 0.2, "max_tokens": 512, "stop": "END"}
        ),
        "langfuse.observation.type": "generation",
        "agentos.span.name": "ChatAnthropic",
        "agentos.span.kind": "llm",
    }
    assert {k: llm.attributes.get(k) for k in expected_llm} == expected_llm
    # The raw JSON text is replaced by the structured forms (Phoenix unflattens the keys).
    assert "llm.input_messages" not in llm.attributes
    assert json.loads(llm.attributes["gen_ai.input.messages"])[1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "hi"}],
    }
    assert llm.events == [
        {
            "name": "first_token",
            "timestamp": ours["llm"].events[0].timestamp,
            "attributes": {"delay_ms": 12.5},
        }
    ]

    tool = got[ours["tool"].span_id]
    assert tool.name == "execute_tool web_search"
    assert tool.status_code == STATUS_ERROR
    assert tool.status_message == "search backend timed out"
    assert tool.attributes["gen_ai.tool.name"] == "web_search"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool.attributes["error.type"] == "TimeoutError"
    assert tool.attributes["openinference.span.kind"] == "TOOL"
    assert tool.events[0]["name"] == "exception"
    assert tool.events[0]["attributes"]["exception.type"] == "TimeoutError"

    retrieval = got[ours["retrieval"].span_id]
    assert retrieval.name == "vector lookup"
    assert retrieval.attributes["openinference.span.kind"] == "RETRIEVER"
    assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
    assert retrieval.attributes["input.value"] == "otlp"
    assert retrieval.attributes["retrieval.documents.0.document.content"] == "OTLP is a protocol"
    assert retrieval.attributes["retrieval.documents.0.document.score"] == 0.9
    assert json.loads(retrieval.attributes["retrieval.documents.0.document.metadata"]) == {
        "src": "a"
    }
    assert retrieval.attributes["retrieval.documents.1.document.score"] == 0.5

    embedding = got[ours["embedding"].span_id]
    assert embedding.name == "embeddings text-embedding-3-small"
    assert embedding.kind == KIND_CLIENT
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings"
    assert embedding.attributes["openinference.span.kind"] == "EMBEDDING"
    assert embedding.attributes["gen_ai.usage.input_tokens"] == 8
    exporter.shutdown()


def test_environment_variables_configure_the_exporter(
    receiver: OTLPReceiver, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Basic%20cGs6c2s=,x-tenant=acme")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    exporter = OTLPExporter(flush_interval_s=0.05)
    assert exporter.endpoint == f"http://127.0.0.1:{receiver.port}/v1/traces"
    tracer.add_exporter(exporter)
    with tracer.start_span("job", SpanKind.CHAIN):
        pass
    exporter.shutdown()
    assert receiver.wait_for_spans(1)
    assert receiver.headers[0]["authorization"] == "Basic cGs6c2s="
    assert receiver.headers[0]["x-tenant"] == "acme"
    resource = receiver.spans[0].resource
    assert resource["service.name"] == "from-env"
    assert resource["deployment.environment"] == "test"


def test_traces_endpoint_variable_wins_and_arguments_win_over_environment(
    receiver: OTLPReceiver, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/ignored")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    from_env = OTLPExporter(flush_interval_s=0.05, service_name="explicit")
    assert from_env.endpoint == receiver.endpoint
    tracer.add_exporter(from_env)
    with tracer.start_span("job", SpanKind.CHAIN):
        pass
    from_env.shutdown()
    assert receiver.wait_for_spans(1)
    assert receiver.spans[0].resource["service.name"] == "explicit"
    explicit = OTLPExporter(f"http://127.0.0.1:{receiver.port}/", headers={"X-Key": "k"})
    assert explicit.endpoint == receiver.endpoint
    explicit.shutdown()


def test_gzip_compression(receiver: OTLPReceiver, tracer: Tracer) -> None:
    exporter = exporter_for(receiver, compression="gzip")
    tracer.add_exporter(exporter)
    with tracer.start_span("zipped", SpanKind.CHAIN):
        pass
    exporter.shutdown()
    assert receiver.wait_for_spans(1)
    assert receiver.headers[0]["content-encoding"] == "gzip"
    assert receiver.spans[0].name == "zipped"


def test_many_traces_from_threads_all_arrive(receiver: OTLPReceiver, tracer: Tracer) -> None:
    exporter = exporter_for(receiver, batch_size=16)
    tracer.add_exporter(exporter)

    def work(worker: int) -> None:
        for i in range(25):
            with tracer.start_span(f"w{worker}-{i}", SpanKind.AGENT):
                with tracer.start_span("chat", SpanKind.LLM) as llm:
                    tracer.record_usage(llm, model="gpt-4o", input_tokens=1, output_tokens=1)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert exporter.flush()
    assert receiver.wait_for_spans(200)
    roots = [s for s in receiver.spans if not s.parent_span_id]
    children = [s for s in receiver.spans if s.parent_span_id]
    assert len(roots) == len(children) == 100
    by_id = {s.span_id: s for s in roots}
    assert all(by_id[c.parent_span_id].trace_id == c.trace_id for c in children)
    assert len(receiver.requests) > 1  # batched, not one request per trace nor one in all
    exporter.shutdown()


# -- faults ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_endpoint_down_costs_the_app_nothing_and_is_counted(lenient: None, tracer: Tracer) -> None:
    exporter = OTLPExporter(f"http://127.0.0.1:{free_port()}", timeout_s=0.5, flush_interval_s=0.01)
    tracer.add_exporter(exporter)
    answers = []
    for i in range(5):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            answers.append(i)
    assert answers == [0, 1, 2, 3, 4]
    assert exporter.flush(timeout_s=30)
    assert testing.dropped_counts()["otlp"] == 5 == exporter.dropped
    exporter.shutdown()


def test_http_500_is_counted_and_delivery_resumes(
    lenient: None, receiver: OTLPReceiver, tracer: Tracer
) -> None:
    exporter = exporter_for(receiver, batch_size=1)
    tracer.add_exporter(exporter)
    receiver.status_code = 500
    for i in range(3):
        with tracer.start_span(f"lost-{i}", SpanKind.CHAIN):
            pass
    assert exporter.flush()
    assert testing.dropped_counts()["otlp"] == 3
    assert receiver.attempts >= 3 and receiver.spans == []
    receiver.status_code = 200
    with tracer.start_span("delivered", SpanKind.CHAIN):
        pass
    assert exporter.flush()
    assert receiver.wait_for_spans(1)
    assert [s.name for s in receiver.spans] == ["delivered"]
    exporter.shutdown()


def test_a_slow_endpoint_never_blocks_the_app(
    lenient: None, receiver: OTLPReceiver, tracer: Tracer
) -> None:
    receiver.gate = threading.Event()  # the backend holds every request
    exporter = exporter_for(receiver, batch_size=1, max_queue=5, timeout_s=30)
    tracer.add_exporter(exporter)
    for i in range(50):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    assert receiver.wait_for_attempts(1)  # the exporter thread is stuck in a request
    dropped = testing.dropped_counts()["otlp"]
    assert 50 - 6 <= dropped <= 50 - 5
    receiver.gate.set()
    assert exporter.flush(timeout_s=60)
    assert receiver.wait_for_spans(50 - dropped)
    assert len(receiver.spans) + testing.dropped_counts()["otlp"] == 50
    exporter.shutdown()


def test_a_request_that_times_out_is_counted(
    lenient: None, receiver: OTLPReceiver, tracer: Tracer
) -> None:
    receiver.gate = threading.Event()
    exporter = exporter_for(receiver, timeout_s=0.3)
    tracer.add_exporter(exporter)
    with tracer.start_span("slow", SpanKind.CHAIN):
        pass
    assert exporter.flush(timeout_s=30)
    assert testing.dropped_counts()["otlp"] == 1
    receiver.gate.set()
    exporter.shutdown()


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        OTLPExporter("localhost:4318")
    with pytest.raises(ConfigurationError, match="key=value"):
        OTLPExporter("http://localhost:4318", headers="novalue")
    with pytest.raises(ConfigurationError, match="compression"):
        OTLPExporter("http://localhost:4318", compression="brotli")
    with pytest.raises(ConfigurationError, match="timeout"):
        OTLPExporter("http://localhost:4318", timeout_s=0)
    with pytest.raises(ConfigurationError, match="str to str"):
        OTLPExporter("http://localhost:4318", headers={"x": 1})  # type: ignore[dict-item]
    assert parse_headers("a=1, b = x%3Dy ,") == {"a": "1", "b": "x=y"}


def test_stack_configure_otlp(receiver: OTLPReceiver) -> None:
    stack_module = pytest.importorskip("agentos_obs.stack")
    stack_module.reset_stack()
    try:
        stack = stack_module.configure(
            service_name="stacked", otlp={"endpoint": receiver.endpoint, "flush_interval_s": 0.05}
        )
        assert isinstance(stack.otlp, OTLPExporter)
        with stack.tracer.start_span("via-stack", SpanKind.CHAIN):
            pass
        stack.tracer.force_flush()
        assert receiver.wait_for_spans(1)
        span = receiver.spans[0]
        assert span.name == "via-stack" and span.resource["service.name"] == "stacked"
    finally:
        stack_module.reset_stack()


def test_unexpected_span_ids_are_skipped_and_counted(receiver: OTLPReceiver) -> None:
    exporter = exporter_for(receiver)
    good = hand_built(1, name="good")
    odd = SpanRecord(
        span_id="not-hex-at-all!!", trace_id=good.trace_id, parent_id=good.spans[0].span_id,
        name="odd", kind=SpanKind.TOOL, status=SpanStatus.OK, start_time=1, end_time=2,
    )  # fmt: skip
    exporter.export(TraceRecord(trace_id=good.trace_id, spans=[good.spans[0], odd]))
    exporter.shutdown()
    assert receiver.wait_for_spans(1)
    assert [s.name for s in receiver.spans] == ["good"]
    assert testing.dropped_counts()["otlp.invalid_ids"] == 1


def test_a_trace_that_cannot_be_encoded_is_dropped_alone(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    good = good_traces(40)
    hostile = [surrogate_name(), time_beyond_uint64(), unreadable_attributes()]
    exporter = exporter_for(receiver, batch_size=64)  # all 43 in one request
    for trace in good[:20] + hostile + good[20:]:
        exporter.export(trace)
    assert exporter.flush()
    assert receiver.wait_for_spans(80)
    assert sorted(s.trace_id for s in receiver.spans) == sorted(
        r.trace_id for t in good for r in t.spans
    )
    assert _guard.dropped_counts()["otlp.unencodable"] == 3 == exporter.dropped
    assert "otlp" not in _guard.dropped_counts()  # the good ones were never counted as lost
    logged = [r.getMessage() for r in caplog.records if "otlp.unencodable" in r.getMessage()]
    assert len(logged) == 1 and "could not be encoded" in logged[0]
    exporter.shutdown()


def test_values_repaired_at_the_seal_reach_the_backend(
    receiver: OTLPReceiver, tracer: Tracer
) -> None:
    exporter = exporter_for(receiver, batch_size=128)
    tracer.add_exporter(exporter)
    for i in range(100):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    with tracer.start_span("file-\udcff.txt", SpanKind.TOOL, {"path": "a\udc80b"}):
        with tracer.start_span("chat", SpanKind.LLM) as llm:
            tracer.record_usage(llm, model="m", input_tokens=2**64, output_tokens=1)
    assert exporter.flush()
    assert receiver.wait_for_spans(102)
    repaired = received(receiver, "execute_tool file-\ufffd.txt")
    assert repaired.attributes["path"] == "a\ufffdb"
    chat = received(receiver, "chat m")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 0  # repaired, and said so
    assert chat.attributes["agentos.repaired"] == ["input_tokens"]
    assert exporter.dropped == 0
    exporter.shutdown()


def received(receiver: OTLPReceiver, name: str) -> ReceivedSpan:
    return receiver.by_name()[name]


def test_a_continued_trace_marks_its_root_parent_as_remote(
    receiver: OTLPReceiver, tracer: Tracer
) -> None:
    exporter = exporter_for(receiver)
    tracer.add_exporter(exporter)
    span = tracer.begin_span(
        "continued", SpanKind.AGENT, trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        parent_id="00f067aa0ba902b7",
    )  # fmt: skip
    child = tracer.begin_span("inner", SpanKind.TOOL, parent=span)
    tracer.end_span(child)
    tracer.end_span(span, status=SpanStatus.OK)
    exporter.shutdown()
    assert receiver.wait_for_spans(2)
    root = received(receiver, "invoke_agent continued")
    assert root.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent_span_id == "00f067aa0ba902b7"
    assert root.flags & FLAG_PARENT_IS_REMOTE
    inner = received(receiver, "execute_tool inner")
    assert inner.parent_span_id == span.span_id and not inner.flags & FLAG_PARENT_IS_REMOTE


def _child_exports(exporter: OTLPExporter) -> None:
    tracer = Tracer("child")
    tracer.add_exporter(exporter)
    with tracer.start_span("from-child", SpanKind.CHAIN):
        pass
    assert exporter.flush(timeout_s=30)
    assert exporter.dropped == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_forked_worker_exports_through_its_own_connection(
    receiver: OTLPReceiver, tracer: Tracer
) -> None:
    exporter = exporter_for(receiver)
    tracer.add_exporter(exporter)
    with tracer.start_span("from-parent", SpanKind.CHAIN):
        pass
    assert exporter.flush()  # the parent's keep-alive connection is now open
    child = multiprocessing.get_context("fork").Process(target=_child_exports, args=(exporter,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with tracer.start_span("parent-again", SpanKind.CHAIN):
        pass
    exporter.shutdown()
    assert receiver.wait_for_spans(3)
    assert sorted(s.name for s in receiver.spans) == ["from-child", "from-parent", "parent-again"]
    assert {s.resource["service.name"] for s in receiver.spans} == {"svc", "child"}


def test_secrets_of_the_review_never_reach_the_payload(
    receiver: OTLPReceiver, tracer: Tracer, tmp_path: Any
) -> None:
    from agentos_obs.exporters.jsonl import JSONLExporter

    query_key, tool_key, provider_key, tag_key = (
        f"QK{'q' * 20}", f"TK{'t' * 20}", f"PK{'p' * 20}", f"GK{'g' * 20}"
    )  # fmt: skip
    exporter = exporter_for(receiver)
    jsonl = JSONLExporter(tmp_path / "t.jsonl")
    tracer.add_exporter(exporter)
    tracer.add_exporter(jsonl)
    params = {"base_url": f"https://llm.example.com/v1?key={query_key}", "temperature": 0}
    with tracer.start_span("agent", SpanKind.AGENT, {"tags": [f"api_key={tag_key}", "prod"]}):
        try:
            with tracer.start_span("fetch", SpanKind.TOOL):
                raise OSError(f"GET https://api.example.com/x?api_key={tool_key} failed")
        except OSError:
            pass
        try:
            with tracer.start_span(
                "ChatOpenAI", SpanKind.LLM, {"llm.invocation_parameters": json.dumps(params)}
            ):
                raise PermissionError(f"Incorrect API key provided: api_key={provider_key}")
        except PermissionError:
            pass
    exporter.shutdown()
    jsonl.close()
    assert receiver.wait_for_spans(3)
    payload = b"".join(r.SerializeToString() for r in receiver.requests)
    written = (tmp_path / "t.jsonl").read_bytes()
    for secret in (query_key, tool_key, provider_key, tag_key):
        assert secret.encode() not in payload and secret.encode() not in written
    # The errors still say what went wrong, without the key.
    assert "api_key=[REDACTED]" in received(receiver, "ChatOpenAI").status_message
    assert "?api_key=[REDACTED] failed" in received(receiver, "execute_tool fetch").status_message
