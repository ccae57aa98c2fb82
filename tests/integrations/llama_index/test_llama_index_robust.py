"""LlamaIndex integration robustness: instrument/uninstrument, handler failures, malformed
events, random call sequences, memory over many queries, budgets, the default stack."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import Dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
)
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler

import agentos_obs.integrations.llama_index._extract as ex
from agentos_obs import testing
from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations.llama_index import (
    AgentOSEventHandler,
    AgentOSSpanHandler,
    instrument,
    instrumented,
    uninstrument,
)
from agentos_obs.testing import InMemoryExporter
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from li_fakes import OPENAI_USAGE, UsageLLM, make_index, make_tool

QUESTION = "What is the capital of France?"
PER_CALL = OPENAI_USAGE["input"] + OPENAI_USAGE["output"]


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return make_index()


def ours(handlers: list[Any]) -> list[Any]:
    return [h for h in handlers if isinstance(h, (AgentOSSpanHandler, AgentOSEventHandler))]


# -- instrument / uninstrument --------------------------------------------------------------


def test_instrument_twice_attaches_once_and_uninstrument_restores(
    index: VectorStoreIndex,
) -> None:
    root = get_dispatcher()
    span_before, event_before = list(root.span_handlers), list(root.event_handlers)
    tracer = Tracer()
    traces: list[Any] = []
    tracer.add_exporter(traces.append, sync=True)

    first = instrument(tracer=tracer)
    second = instrument(tracer=tracer)

    assert first is second is instrumented()
    assert ours(root.span_handlers) == [first]
    assert ours(root.event_handlers) == [first.event_handler]
    index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    (trace,) = traces
    run_ids = [s.attributes["agentos.run_id"] for s in trace.spans]
    assert len(run_ids) == len(set(run_ids))  # no LlamaIndex span recorded twice
    assert trace.total_tokens == PER_CALL

    uninstrument()
    uninstrument()

    assert instrumented() is None
    assert [id(h) for h in root.span_handlers] == [id(h) for h in span_before]
    assert [id(h) for h in root.event_handlers] == [id(h) for h in event_before]
    index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    assert len(traces) == 1  # nothing recorded after uninstrument

    again = instrument(tracer=tracer)
    try:
        index.as_query_engine(llm=UsageLLM()).query(QUESTION)
        assert len(traces) == 2
        assert ours(root.span_handlers) == [again]
    finally:
        uninstrument()
    assert testing.failure_counts() == {}


def test_instrument_switches_tracer_without_a_second_handler(index: VectorStoreIndex) -> None:
    a, b = Tracer(), Tracer()
    got_a: list[Any] = []
    got_b: list[Any] = []
    a.add_exporter(got_a.append, sync=True)
    b.add_exporter(got_b.append, sync=True)
    try:
        instrument(tracer=a)
        instrument(tracer=b)
        index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    finally:
        uninstrument()
    assert (len(got_a), len(got_b)) == (0, 1)
    assert len(ours(get_dispatcher().span_handlers)) == 0


def test_uninstrument_closes_only_our_open_spans() -> None:
    tracer = Tracer()
    traces: list[Any] = []
    tracer.add_exporter(traces.append, sync=True)
    foreign = SimpleSpanHandler()
    root = get_dispatcher()
    root.add_span_handler(foreign)
    dispatcher = get_dispatcher(__name__)

    @dispatcher.span
    def long_running() -> str:
        uninstrument()  # while this span is open for both handlers
        return "done"

    try:
        instrument(tracer=tracer)
        assert long_running() == "done"
    finally:
        uninstrument()
        root.span_handlers.remove(foreign)
    (trace,) = traces
    assert trace.root_span.status is SpanStatus.CANCELLED
    assert trace.root_span.attributes["agentos.closed"] == "uninstrumented"
    # The other tool's span went on and completed normally.
    assert [ex.readable_name(s.id_) for s in foreign.completed_spans] == [
        "test_uninstrument_closes_only_our_open_spans.<locals>.long_running"
    ]
    assert foreign.dropped_spans == []


def test_bad_configuration_is_rejected_at_set_up() -> None:
    with pytest.raises(ConfigurationError):
        instrument(tracer="not a tracer")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AgentOSSpanHandler(stream_timeout_s=0)
    with pytest.raises(ConfigurationError):
        AgentOSSpanHandler(stream_timeout_s="soon")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AgentOSEventHandler(span_handler="x")  # type: ignore[arg-type]
    assert instrumented() is None


def test_handlers_on_a_private_dispatcher_and_its_shutdown() -> None:
    tracer = Tracer()
    traces: list[Any] = []
    tracer.add_exporter(traces.append, sync=True)
    handler = AgentOSSpanHandler(tracer=tracer)
    private = Dispatcher(
        name="agentos_test_private",
        span_handlers=[handler],
        event_handlers=[handler.event_handler],
        propagate=False,
    )

    @private.span
    def produce() -> StreamingResponse:
        # A stream nobody has read yet: the span stays open until it is read.
        return StreamingResponse(response_gen=(c for c in "abc"))

    @private.span
    def plain(x: int) -> int:
        return x + 1

    assert plain(1) == 2
    response = produce()
    assert handler.open_span_count == 1
    private.shutdown()  # drops open spans, then closes every handler

    assert handler.open_span_count == 0
    plain_trace, stream_trace = traces
    assert plain_trace.root_span.name.endswith("plain")
    assert plain_trace.root_span.status is SpanStatus.OK
    assert stream_trace.root_span.name.endswith("produce")
    assert stream_trace.root_span.status is SpanStatus.CANCELLED
    assert stream_trace.root_span.attributes["agentos.closed"] == "closed"
    assert list(response.response_gen) == ["a", "b", "c"]  # the app's stream still works
    assert len(traces) == 2


# -- failures inside the handlers -----------------------------------------------------------


class BrokenTracer(Tracer):
    def begin_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")


@pytest.mark.usefixtures("lenient")
def test_handler_failure_never_reaches_the_app_and_is_logged_once(
    index: VectorStoreIndex, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentos_obs")
    instrument(tracer=BrokenTracer())
    try:
        engine = index.as_query_engine(llm=UsageLLM())
        first = engine.query(QUESTION)
        second = engine.query(QUESTION)
    finally:
        uninstrument()
    assert str(first) == str(second) == "Paris is the capital of France."
    counts = testing.failure_counts()
    assert counts["llama_index.span_enter"] >= 20  # every span of both queries, counted
    warnings = [r for r in caplog.records if "llama_index.span_enter" in r.getMessage()]
    assert len(warnings) == 1  # logged once


@pytest.mark.usefixtures("lenient")
def test_failing_usage_recording_is_counted_and_the_query_still_answers(
    handler: AgentOSSpanHandler,
    tracer: Tracer,
    exporter: InMemoryExporter,
    index: VectorStoreIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("price table corrupt")

    monkeypatch.setattr(tracer, "record_usage", broken)
    response = index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    assert str(response) == "Paris is the capital of France."
    assert testing.failure_counts() == {"llama_index.event": 1}
    trace = exporter.trace
    assert trace.total_tokens == 0
    assert all(s.ended for s in trace.spans)


# -- odd input ------------------------------------------------------------------------------


class Exploding:
    """A raw provider object whose every attribute raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class CustomEvent(BaseEvent):
    payload: Any = None


def test_malformed_and_odd_events_are_survived(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    events = handler.event_handler
    handler.span_enter(id_="UsageLLM.chat-" + "0" * 36, bound_args=None, instance=UsageLLM())
    handler.span_enter(id_="no-uuid-here", bound_args=object(), instance=object(), parent_id="gone")
    sid = "UsageLLM.chat-" + "0" * 36
    odd = [
        LLMChatStartEvent.model_construct(span_id=sid, messages=None, model_dict="x"),
        LLMChatInProgressEvent.model_construct(span_id=sid, response=None),
        LLMChatEndEvent.model_construct(span_id=sid, messages=[], response="not a response"),
        LLMChatEndEvent(
            span_id=sid,
            messages=[],
            response=ChatResponse(message=ChatMessage(content="x"), raw=Exploding()),
        ),
        LLMChatEndEvent(
            span_id=sid,
            messages=[],
            response=ChatResponse(
                message=ChatMessage(content="x"),
                raw={"usage": {"prompt_tokens": -3, "completion_tokens": "lots"}, "model": 7},
            ),
        ),
        LLMCompletionEndEvent.model_construct(span_id=sid, prompt=None, response=None),
        RetrievalEndEvent.model_construct(
            span_id="no-uuid-here",
            nodes=[None, object(), {"score": float("nan")}],
            str_or_query_bundle=None,
        ),
        EmbeddingEndEvent.model_construct(span_id="no-uuid-here", chunks="abc", embeddings=None),
        ExceptionEvent(span_id=sid, exception=ValueError("seen by an open span")),
        ExceptionEvent(span_id="unknown-span", exception=ValueError("nobody")),
        CustomEvent(span_id=sid, payload=object()),
        LLMChatEndEvent.model_construct(span_id=None, response=None),
        LLMChatEndEvent.model_construct(span_id=12345, response=None),
        object(),
        None,
    ]
    for event in odd:
        events.handle(event)
    handler.span_exit(id_=sid, bound_args=None, result=object())
    handler.span_exit(id_=sid, bound_args=None, result=None)  # twice
    handler.span_drop(id_="no-uuid-here", bound_args=None, err=None)
    handler.span_drop(id_="never-opened", bound_args=None, err=RuntimeError("x"))
    handler.span_exit(id_="never-opened", bound_args=None)

    assert testing.failure_counts() == {}
    assert handler.open_span_count == 0
    by_name = {t.root_span.name: t.root_span for t in exporter.traces}
    # No usable usage in any end event: the one real answer ("x") is estimated, marked.
    chat = by_name["UsageLLM.chat"]
    assert chat.total_tokens == 1 and chat.attributes["llm.usage.estimated"] is True
    assert chat.status is SpanStatus.OK
    assert by_name["no"].status is SpanStatus.ERROR  # no uuid: the part before the first dash


def test_readable_names() -> None:
    uuid = "123e4567-e89b-42d3-a456-426614174000"
    assert ex.readable_name(f"RetrieverQueryEngine.query-{uuid}") == "RetrieverQueryEngine.query"
    assert ex.readable_name(f"f.<locals>.g-{uuid}") == "f.<locals>.g"
    assert ex.readable_name("Thing.method-not-a-uuid") == "Thing.method"
    assert ex.readable_name("") == ""
    assert ex.readable_name("-") == "-"


# -- random call sequences ------------------------------------------------------------------

_IDS = [f"C{i}.m-123e4567-e89b-42d3-a456-42661417400{i}" for i in range(5)] + ["odd", ""]
_INSTANCES = [None, "llm", "embedding", "tool", object()]


_OBJECTS: dict[str, Any] = {}


def _instance(name: Any) -> Any:
    if not isinstance(name, str):
        return name
    if not _OBJECTS:
        _OBJECTS.update(llm=UsageLLM(), embedding=MockEmbedding(embed_dim=2), tool=make_tool())
    return _OBJECTS[name]


def _result(kind: str) -> Any:
    if kind == "gen":
        return (x for x in range(2))
    if kind == "stream":
        return StreamingResponse(response_gen=(x for x in "ab"))
    if kind == "agen":

        async def agen() -> Any:
            yield 1

        return agen()
    return {"none": None, "text": "answer", "obj": object()}[kind]


def _event(kind: str, span_id: str) -> Any:
    response = ChatResponse(
        message=ChatMessage(content="x"),
        raw={"usage": {"prompt_tokens": 3, "completion_tokens": 2}, "model": "gpt-4o-mini"},
    )
    if kind == "start":
        return LLMChatStartEvent(span_id=span_id, messages=[], additional_kwargs={}, model_dict={})
    if kind == "progress":
        return LLMChatInProgressEvent(span_id=span_id, messages=[], response=response)
    if kind == "end":
        return LLMChatEndEvent(span_id=span_id, messages=[], response=response)
    if kind == "completion_end":
        return LLMCompletionEndEvent(
            span_id=span_id, prompt="p", response=CompletionResponse(text="t", raw=Exploding())
        )
    if kind == "exception":
        return ExceptionEvent(span_id=span_id, exception=GeneratorExit())
    return RetrievalEndEvent(span_id=span_id, str_or_query_bundle="q", nodes=[])


_OPS = st.one_of(
    st.tuples(
        st.just("enter"),
        st.sampled_from(_IDS),
        st.sampled_from([None, *_IDS]),
        st.sampled_from(_INSTANCES),
    ),
    st.tuples(
        st.just("exit"),
        st.sampled_from(_IDS),
        st.sampled_from(["none", "text", "obj", "gen", "stream", "agen"]),
    ),
    st.tuples(st.just("drop"), st.sampled_from(_IDS), st.sampled_from([None, "err", "cancel"])),
    st.tuples(
        st.just("event"),
        st.sampled_from(["start", "progress", "end", "completion_end", "exception", "retrieval"]),
        st.sampled_from(_IDS),
    ),
    st.tuples(st.just("sweep"), st.sampled_from([None, 0.0])),
    st.tuples(st.just("drop_results")),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(_OPS, max_size=30))
def test_random_span_and_event_sequences_never_raise(ops: list[tuple[Any, ...]]) -> None:
    testing.reset_counts()
    tracer = Tracer()
    handler = AgentOSSpanHandler(tracer=tracer)
    events = handler.event_handler
    keep: list[Any] = []  # results the "app" still holds
    for op in ops:
        if op[0] == "enter":
            handler.span_enter(
                id_=op[1], bound_args=None, instance=_instance(op[3]), parent_id=op[2]
            )
        elif op[0] == "exit":
            result = _result(op[2])
            keep.append(result)
            handler.span_exit(id_=op[1], bound_args=None, result=result)
        elif op[0] == "drop":
            err = {None: None, "err": RuntimeError("x"), "cancel": asyncio.CancelledError()}[op[2]]
            handler.span_drop(id_=op[1], bound_args=None, err=err)
        elif op[0] == "event":
            events.handle(_event(op[1], op[2]))
        elif op[0] == "sweep":
            handler.sweep(op[1])
        else:
            keep.clear()  # dropped by the app: freed now (refcount), weakref callbacks run
    for item in keep:
        if isinstance(item, StreamingResponse):
            list(item.response_gen)  # our wrapper, if installed, ends its span
    handler.close()
    assert testing.failure_counts() == {}
    assert handler.open_span_count == 0
    assert handler.parked_stream_count == 0
    assert tracer.active_trace_count == 0


# -- memory ---------------------------------------------------------------------------------


def test_nothing_grows_over_many_queries(
    handler: AgentOSSpanHandler, tracer: Tracer, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM())
    streaming = index.as_query_engine(llm=UsageLLM(), streaming=True)
    bridge = handler.bridge
    for i in range(120):
        engine.query(QUESTION)
        response = streaming.query(QUESTION)
        if i % 3 == 0:
            "".join(response.response_gen)  # read
        elif i % 3 == 1:
            gen = response.response_gen  # read half, then closed
            next(gen)
            gen.close()
        del response  # i % 3 == 2: dropped unread
    gc.collect()
    handler.sweep()

    assert len(exporter.traces) == 240
    assert bridge.open_span_count == 0
    assert bridge.parked_stream_count == 0
    assert len(bridge._abandoned) == 0
    assert bridge.dedupe_window_size <= 64
    assert len(bridge._event_methods) < 64
    assert tracer.active_trace_count == 0
    statuses = {t.status for t in exporter.traces}
    assert statuses == {SpanStatus.OK, SpanStatus.CANCELLED}
    assert testing.failure_counts() == {}


# -- budgets --------------------------------------------------------------------------------


def test_budget_in_raise_mode_cannot_stop_llama_index_and_says_so(
    index: VectorStoreIndex, caplog: pytest.LogCaptureFixture
) -> None:
    from agentos_obs.cost import BudgetAlert

    tracer = Tracer()
    traces: list[Any] = []
    tracer.add_exporter(traces.append, sync=True)
    budget = BudgetAlert(budget_limit=1e-9, mode="raise")
    tracer.add_span_processor(budget)
    engine = index.as_query_engine(llm=UsageLLM())
    instrument(tracer=tracer)
    try:
        engine.query(QUESTION)  # spends past the limit
        response = engine.query(QUESTION)  # raise mode: LlamaIndex swallows the exception
    finally:
        uninstrument()
    assert str(response) == "Paris is the capital of France."  # documented limitation
    refused = [s for s in traces[1].spans if s.attributes.get("error.type") == "BudgetExceeded"]
    assert refused and all(s.kind is SpanKind.LLM for s in refused)
    assert all(s.status is SpanStatus.ERROR for s in refused)
    assert traces[1].total_tokens == PER_CALL  # the call that went ahead is still counted
    assert testing.failure_counts()["llama_index.budget_not_enforced"] >= 1


# -- the default stack ----------------------------------------------------------------------


def test_no_tracer_reports_to_the_default_stack_resolved_late(index: VectorStoreIndex) -> None:
    from agentos_obs.stack import get_stack, reset_stack

    handler = instrument()  # built before the stack below exists
    try:
        reset_stack()
        stack = get_stack()
        traces: list[Any] = []
        stack.tracer.add_exporter(traces.append, sync=True)
        index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    finally:
        uninstrument()
        reset_stack()
    assert handler.tracer is None
    (trace,) = traces
    assert trace.total_tokens == PER_CALL
    assert testing.failure_counts() == {}
