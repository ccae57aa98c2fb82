"""LlamaIndex streaming: spans stay open until the stream ends, usage and time to first token
land on the real call, the streamed LLM call stays in the query's trace, abandoned streams end
as CANCELLED (closed, dropped, or swept after the timeout)."""

from __future__ import annotations

import gc
import time

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage

import agentos_obs.attributes as attr
from agentos_obs import testing
from agentos_obs.integrations.llama_index import AgentOSSpanHandler, instrument, uninstrument
from agentos_obs.testing import InMemoryExporter
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from li_fakes import OPENAI_USAGE, UsageLLM, check_tree, make_index, tree

QUESTION = "What is the capital of France?"
PER_CALL = OPENAI_USAGE["input"] + OPENAI_USAGE["output"]


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return make_index()


def test_streaming_query_keeps_the_llm_call_in_the_query_trace(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    llm = UsageLLM()
    response = index.as_query_engine(llm=llm, streaming=True).query(QUESTION)
    # The query returned a stream handle: nothing exported until the answer is consumed.
    assert exporter.traces == []
    assert handler.open_span_count > 0

    text = "".join(response.response_gen)

    assert text.strip() == "Paris is the capital of France."
    trace = exporter.trace
    check_tree(trace)
    assert trace.root_span.name == "RetrieverQueryEngine.query"
    (call,) = [s for s in trace.spans if s.counts_usage]
    assert call.name == "UsageLLM.stream_complete"
    assert call.total_tokens == PER_CALL == trace.total_tokens
    assert llm.calls == 1
    assert call.attributes[attr.LLM_STREAMING] is True
    assert call.attributes[attr.LLM_TIME_TO_FIRST_TOKEN_MS] >= 0
    assert call.attributes[attr.LLM_TIME_TO_FIRST_TOKEN_MS] <= call.duration_ms
    assert call.ancestor(SpanKind.CHAIN) is not None
    names = [s.name for s in _ancestors(call)]
    assert "CompactAndRefine.synthesize" in names, tree(trace.root_span)
    # The query span covers the whole answer, streamed part included.
    assert trace.root_span.end_time >= call.end_time
    assert all(s.status is SpanStatus.OK for s in trace.spans)
    assert handler.open_span_count == 0


def _ancestors(span: object) -> list[object]:
    out = []
    node = getattr(span, "parent", None)
    while node is not None:
        out.append(node)
        node = node.parent
    return out


async def test_async_streaming_query(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    response = await index.as_query_engine(llm=UsageLLM(), streaming=True).aquery(QUESTION)
    assert exporter.traces == []
    chunks = [chunk async for chunk in response.async_response_gen()]

    assert "".join(chunks).strip() == "Paris is the capital of France."
    trace = exporter.trace
    check_tree(trace)
    assert trace.root_span.name == "RetrieverQueryEngine.aquery"
    assert trace.total_tokens == PER_CALL
    assert handler.open_span_count == 0


def test_direct_stream_span_stays_open_until_the_stream_ends(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    llm = UsageLLM()
    gen = llm.stream_complete("Say something")
    assert exporter.traces == []
    (span,) = [s.span for s in handler.bridge._states.values()]
    assert not span.ended

    pieces = list(gen)

    assert len(pieces) > 1
    trace = exporter.trace
    assert trace.root_span is span.record and span.ended
    assert span.total_tokens == PER_CALL
    assert span.status is SpanStatus.OK


def test_chat_stream_of_a_completion_llm_counts_usage_once(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    llm = UsageLLM(chat_model=True)
    "".join(r.delta or "" for r in llm.stream_chat([ChatMessage(role="user", content="hi")]))
    trace = exporter.trace
    assert [s.name for s in trace.spans] == ["UsageLLM.stream_chat", "UsageLLM.stream_complete"]
    assert trace.total_tokens == PER_CALL * llm.calls
    assert [s.name for s in trace.spans if s.has_usage] == ["UsageLLM.stream_complete"]


async def test_async_wrappers_do_not_double_count(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    llm = UsageLLM(chat_model=True)
    messages = [ChatMessage(role="user", content="hi")]
    await llm.achat(messages)  # achat > chat > complete: three spans, one call
    stream = await llm.astream_chat(messages)  # re-yields a sibling stream_chat's chunks
    async for _ in stream:
        pass
    await llm.acomplete("hi")  # acomplete > complete

    assert llm.calls == 3
    total = sum(t.total_tokens for t in exporter.traces)
    assert total == PER_CALL * llm.calls, [tree(t.root_span) for t in exporter.traces]
    assert sum(t.usage_totals()["llm_calls"] for t in exporter.traces) == 3
    assert handler.open_span_count == 0


def test_streaming_chat_engine(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    llm = UsageLLM(chat_model=True)
    engine = index.as_chat_engine(chat_mode="simple", llm=llm)
    response = engine.stream_chat("Hello")
    "".join(response.response_gen)

    trace = exporter.trace
    check_tree(trace)
    assert trace.root_span.name == "SimpleChatEngine.stream_chat"
    names = {s.name for s in trace.spans}
    # The chat engine writes the answer to memory from a thread: still the same trace.
    assert "StreamingAgentChatResponse.write_response_to_history" in names
    assert trace.total_tokens == PER_CALL * llm.calls == PER_CALL
    assert trace.root_span.end_time >= max(s.end_time for s in trace.spans if s.has_usage)


def test_mid_stream_error_marks_the_call_and_reaches_the_consumer(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    boom = ConnectionError("stream broke")
    llm = UsageLLM(error=boom, fail_after_chunks=1)
    gen = llm.stream_complete("Say something")
    with pytest.raises(ConnectionError) as caught:
        list(gen)
    assert caught.value is boom

    trace = exporter.trace
    (span,) = trace.spans
    assert span.status is SpanStatus.ERROR
    assert span.attributes[attr.ERROR_TYPE] == "ConnectionError"
    assert span.attributes[attr.ERROR_MESSAGE] == "stream broke"
    assert span.total_tokens == 0
    assert handler.open_span_count == 0


def test_closed_stream_ends_as_cancelled(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    response = index.as_query_engine(llm=UsageLLM(), streaming=True).query(QUESTION)
    gen = response.response_gen
    next(gen)
    gen.close()  # the app stops reading half-way

    trace = exporter.trace
    check_tree(trace)
    llm_spans = [s for s in trace.spans if s.name == "UsageLLM.stream_complete"]
    assert len(llm_spans) == 1
    assert llm_spans[0].status is SpanStatus.CANCELLED
    synth = next(s for s in trace.spans if s.name == "CompactAndRefine.synthesize")
    assert synth.status is SpanStatus.CANCELLED
    assert synth.attributes["agentos.stream_abandoned"] is True
    assert trace.root_span.status is SpanStatus.CANCELLED
    assert handler.open_span_count == 0


def test_dropped_unread_stream_is_ended_at_the_next_opportunity(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM(), streaming=True)
    response = engine.query(QUESTION)
    del response  # never read
    gc.collect()
    assert exporter.traces == []  # noticed, not yet ended: the GC callback only queues

    engine.query(QUESTION)  # the next root span ends it (no background thread)

    abandoned = [t for t in exporter.traces if t.status is SpanStatus.CANCELLED]
    assert len(abandoned) == 1
    synth = next(s for s in abandoned[0].spans if s.name == "CompactAndRefine.synthesize")
    assert synth.attributes["agentos.stream_abandoned"] is True


def test_held_stream_is_swept_after_the_timeout(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    response = index.as_query_engine(llm=UsageLLM(), streaming=True).query(QUESTION)
    assert handler.sweep() == 0  # young: the default timeout is minutes
    assert handler.parked_stream_count > 0

    ended = handler.sweep(max_age_s=0)

    assert ended >= 1
    trace = exporter.trace
    check_tree(trace)
    assert trace.root_span.status is SpanStatus.CANCELLED
    assert any(s.attributes.get("agentos.swept") for s in trace.spans)
    assert handler.open_span_count == 0
    # Reading the stream afterwards still works for the app; the query trace is gone, so the
    # late LLM call is recorded as a trace of its own rather than lost.
    assert "".join(response.response_gen).strip() == "Paris is the capital of France."
    late = exporter.traces[1]
    assert late.root_span.name == "UsageLLM.stream"
    assert late.total_tokens == PER_CALL


def test_timeout_sweep_runs_by_itself_when_a_root_span_starts(index: VectorStoreIndex) -> None:
    tracer = Tracer()
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    instrument(tracer=tracer, stream_timeout_s=0.05)
    try:
        engine = index.as_query_engine(llm=UsageLLM(), streaming=True)
        held = engine.query(QUESTION)
        time.sleep(0.1)  # past the timeout (and the sweep interval); not a timed assertion
        plain = index.as_query_engine(llm=UsageLLM())
        plain.query(QUESTION)
        statuses = sorted(t.root_span.status.value for t in exporter.traces)
        assert statuses == ["cancelled", "ok"]
        assert held is not None
    finally:
        uninstrument()
    assert testing.failure_counts() == {}
