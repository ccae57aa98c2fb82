"""AgentOSCallbackHandler on real LangChain runnables with offline fakes that report usage."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

import agentos_obs.attributes as attr
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import FakeChatModel, FakeRetriever, InMemoryExporter
from agentos_obs.tracing import Span, SpanKind, SpanStatus, Tracer
from conftest import traced
from lc_fakes import FakeUsageLLM, ModelFailure, catalog, run_tree, span_tree

PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])


@pytest.fixture
def handler(tracer: Tracer) -> AgentOSCallbackHandler:
    return AgentOSCallbackHandler(tracer=tracer)


def lcel(model: Any = None) -> Any:
    return PROMPT | (model or FakeChatModel()) | StrOutputParser()


# -- tree ---------------------------------------------------------------------------------


def test_lcel_span_tree_equals_langchains_own_run_tree(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    collector = RunCollectorCallbackHandler()
    out = lcel().invoke({"q": "hi"}, config={"callbacks": [handler, collector]})

    assert out == "hello world"
    trace = exporter.trace
    assert trace.root_span is not None
    assert span_tree(trace.root_span) == run_tree(collector.traced_runs[0])
    assert span_tree(trace.root_span) == (
        "RunnableSequence",
        (("ChatPromptTemplate", ()), ("FakeChatModel", ()), ("StrOutputParser", ())),
    )
    kinds = {s.name: s.kind for s in trace.spans}
    assert kinds == {
        "RunnableSequence": SpanKind.CHAIN,
        "ChatPromptTemplate": SpanKind.CHAIN,
        "FakeChatModel": SpanKind.LLM,
        "StrOutputParser": SpanKind.CHAIN,
    }
    assert exporter.span("ChatPromptTemplate").attributes["langchain.run_type"] == "prompt"
    assert all(s.status is SpanStatus.OK and s.ended for s in trace.spans)
    assert all(s.trace_id == trace.trace_id for s in trace.spans)
    assert handler.open_run_count == 0


def test_llm_span_has_usage_model_provider_cost_and_finish_reason(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    model = FakeChatModel(
        input_tokens=1000,
        output_tokens=500,
        cache_read_tokens=400,
        resolved_model="gpt-4o-mini-2024-07-18",
    )
    lcel(model).invoke({"q": "hi"}, config={"callbacks": [handler]})

    llm = exporter.span("FakeChatModel")
    assert (llm.input_tokens, llm.output_tokens, llm.cache_read_tokens) == (1000, 500, 400)
    assert llm.model_name == "gpt-4o-mini-2024-07-18"  # what answered
    assert llm.attributes[attr.LLM_REQUEST_MODEL] == "gpt-4o-mini"  # what was asked for
    assert llm.provider == "openai"
    # 600 uncached x $1/M + 400 cached x $0.5/M + 500 out x $2/M
    assert llm.cost_usd == pytest.approx((600 * 1.0 + 400 * 0.5 + 500 * 2.0) / 1e6)
    assert llm.attributes[attr.LLM_FINISH_REASON] == "stop"
    totals = exporter.trace.usage_totals()
    assert (totals["input_tokens"], totals["output_tokens"], totals["llm_calls"]) == (1000, 500, 1)


def test_usage_only_in_llm_output_token_usage(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    model = FakeChatModel(
        usage_in="llm_output", input_tokens=30, output_tokens=7, cache_read_tokens=10
    )
    lcel(model).invoke({"q": "hi"}, config={"callbacks": [handler]})

    llm = exporter.span("FakeChatModel")
    assert (llm.input_tokens, llm.output_tokens, llm.cache_read_tokens) == (30, 7, 10)
    assert llm.cost_usd is not None


def test_completion_llm_usage_from_llm_output(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    chain = PromptTemplate.from_template("Say {q}") | FakeUsageLLM()
    assert chain.invoke({"q": "x"}, config={"callbacks": [handler]}) == "a completion"

    llm = exporter.span("FakeUsageLLM")
    assert llm.kind is SpanKind.LLM
    assert (llm.input_tokens, llm.output_tokens) == (7, 3)
    assert llm.model_name == "gpt-3.5-turbo-instruct"
    assert llm.attributes[attr.LLM_FINISH_REASON] == "length"
    assert llm.cost_usd == pytest.approx((7 * 1.5 + 3 * 2.0) / 1e6)


def test_model_without_usage_or_price_is_unpriced_not_zero(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    lcel(FakeChatModel(model_name="mystery-model-9")).invoke(
        {"q": "hi"}, config={"callbacks": [handler]}
    )
    llm = exporter.span("FakeChatModel")
    assert llm.cost_usd is None
    assert llm.attributes[attr.LLM_UNPRICED] is True
    assert exporter.trace.usage_totals()["unpriced_llm_calls"] == 1


def test_batch_gives_one_correct_trace_per_input(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    outputs = lcel().batch([{"q": str(i)} for i in range(8)], config={"callbacks": [handler]})

    assert outputs == ["hello world"] * 8
    assert len(exporter.traces) == 8
    for trace in exporter.traces:
        assert trace.root_span is not None and trace.root_span.name == "RunnableSequence"
        assert len(trace.spans) == 4
        assert {s.trace_id for s in trace.spans} == {trace.trace_id}
        assert all(s.parent is trace.root_span for s in trace.spans if s is not trace.root_span)
        assert trace.usage_totals()["llm_calls"] == 1
    assert handler.open_run_count == 0


# -- streaming ----------------------------------------------------------------------------


def _assert_streamed_llm(exporter: InMemoryExporter) -> None:
    llm = exporter.span("FakeChatModel")
    assert (llm.input_tokens, llm.output_tokens) == (12, 5)  # the final chunk's, once
    assert llm.attributes[attr.LLM_STREAMING] is True
    ttft = llm.attributes[attr.LLM_TIME_TO_FIRST_TOKEN_MS]
    assert isinstance(ttft, float) and 0 <= ttft <= llm.duration_ms
    assert llm.events == ()  # no per-token events
    assert exporter.trace.usage_totals()["input_tokens"] == 12


def test_stream_takes_usage_from_final_chunk_once_with_ttft(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    collector = RunCollectorCallbackHandler()
    chunks = list(
        lcel(FakeChatModel(replies=["one two three"])).stream(
            {"q": "hi"}, config={"callbacks": [handler, collector]}
        )
    )
    assert "".join(chunks) == "one two three"
    _assert_streamed_llm(exporter)
    assert exporter.trace.root_span is not None
    assert span_tree(exporter.trace.root_span) == run_tree(collector.traced_runs[0])


async def test_astream_takes_usage_from_final_chunk_once_with_ttft(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    chain = lcel(FakeChatModel(replies=["one two three"]))
    chunks = [c async for c in chain.astream({"q": "hi"}, config={"callbacks": [handler]})]
    assert "".join(chunks) == "one two three"
    _assert_streamed_llm(exporter)


def _chunk(text: str, usage: dict[str, int] | None = None) -> Any:
    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk

    message = AIMessageChunk(content=text)
    if usage is not None:
        message.usage_metadata = {**usage, "total_tokens": sum(usage.values())}  # type: ignore[typeddict-item]
    return ChatGenerationChunk(message=message)


def test_chunk_usage_is_the_fallback_when_the_end_has_none(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    import uuid

    from langchain_core.outputs import LLMResult

    run = uuid.uuid4()
    handler.on_chat_model_start(
        {"name": "m"}, [[]], run_id=run, metadata={"ls_model_name": "gpt-4o-mini"}
    )
    # Anthropic-style: input tokens on the first chunk, output tokens on the last.
    handler.on_llm_new_token(
        "a", chunk=_chunk("a", {"input_tokens": 20, "output_tokens": 0}), run_id=run
    )
    handler.on_llm_new_token("b", chunk=_chunk("b"), run_id=run)
    handler.on_llm_new_token(
        "", chunk=_chunk("", {"input_tokens": 0, "output_tokens": 9}), run_id=run
    )
    handler.on_llm_end(LLMResult(generations=[]), run_id=run)
    span = exporter.span("m")
    assert (span.input_tokens, span.output_tokens) == (20, 9)
    assert span.cost_usd == pytest.approx((20 * 1.0 + 9 * 2.0) / 1e6)


def test_usage_streamed_before_a_failure_is_kept(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    import uuid

    run = uuid.uuid4()
    handler.on_chat_model_start(
        {"name": "m"}, [[]], run_id=run, metadata={"ls_model_name": "gpt-4o-mini"}
    )
    handler.on_llm_new_token(
        "a", chunk=_chunk("a", {"input_tokens": 20, "output_tokens": 3}), run_id=run
    )
    handler.on_llm_error(ModelFailure("connection reset"), run_id=run)
    span = exporter.span("m")
    assert span.status is SpanStatus.ERROR
    assert (span.input_tokens, span.output_tokens) == (20, 3)


def test_ttft_feeds_the_stacks_histogram() -> None:
    from agentos_obs.stack import create_observability_stack

    stack = create_observability_stack("ttft-test")
    handler = AgentOSCallbackHandler(tracer=stack.tracer)
    list(lcel().stream({"q": "hi"}, config={"callbacks": [handler]}))
    stack.span_metrics.flush()
    exposition = stack.metrics.to_prometheus_text()
    assert (
        'llm_time_to_first_token_seconds_count{model="gpt-4o-mini",provider="openai"} 1.0'
        in exposition
    )


# -- concurrency --------------------------------------------------------------------------


async def test_gather_of_200_ainvoke_gives_200_separate_correct_traces(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    handler = AgentOSCallbackHandler(tracer=tracer)
    chain = lcel(FakeChatModel(latency_s=0.001))

    async def one(i: int) -> str:
        return await chain.ainvoke(
            {"q": str(i)}, config={"callbacks": [handler], "metadata": {"user_id": f"u{i}"}}
        )

    results = await asyncio.gather(*(one(i) for i in range(200)))

    assert results == ["hello world"] * 200
    assert len(exporter.traces) == 200
    assert len({t.trace_id for t in exporter.traces}) == 200
    assert sorted(t.user_id or "" for t in exporter.traces) == sorted(f"u{i}" for i in range(200))
    for trace in exporter.traces:
        root = trace.root_span
        assert root is not None and root.name == "RunnableSequence"
        assert [c.name for c in root.children] == [
            "ChatPromptTemplate",
            "FakeChatModel",
            "StrOutputParser",
        ]
        assert len(trace.spans) == 4 and all(s.trace_id == trace.trace_id for s in trace.spans)
        assert trace.usage_totals()["input_tokens"] == 12
    assert handler.open_run_count == 0
    assert tracer.active_trace_count == 0


# -- tools and retrievers -----------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_tool_calling_loop(exporter: InMemoryExporter, handler: AgentOSCallbackHandler) -> None:
    model = FakeChatModel(
        replies=["The answer is:"], tool_calls=[("get_weather", {"city": "Paris"})]
    ).bind_tools([get_weather])
    tools = {"get_weather": get_weather}

    def loop(question: str) -> str:
        messages: list[Any] = [HumanMessage(question)]
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                messages.append(tools[call["name"]].invoke(call))

    agent = RunnableLambda(loop, name="weather_loop").with_config(
        metadata={"agentos_kind": "agent"}
    )
    answer = agent.invoke("weather?", config={"callbacks": [handler]})

    assert answer == "The answer is: sunny in Paris"
    trace = exporter.trace
    root = trace.root_span
    assert root is not None and root.name == "weather_loop" and root.kind is SpanKind.AGENT
    assert [(c.name, c.kind) for c in root.children] == [
        ("FakeChatModel", SpanKind.LLM),
        ("get_weather", SpanKind.TOOL),
        ("FakeChatModel", SpanKind.LLM),
    ]
    tool_span = exporter.span("get_weather")
    assert tool_span.attributes[attr.TOOL_NAME] == "get_weather"
    assert tool_span.attributes[attr.TOOL_CALL_ID] == "call_0"
    first_llm = root.children[0]
    params = json.loads(first_llm.attributes[attr.LLM_INVOCATION_PARAMS])
    assert params["tool_names"] == ["get_weather"] and "tools" not in params
    assert trace.usage_totals()["llm_calls"] == 2


def test_tool_error_handled_by_langchain_marks_tool_span_error(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    @tool
    def flaky(x: str) -> str:
        """Always fails."""
        from langchain_core.tools import ToolException

        raise ToolException("backend unavailable")

    flaky.handle_tool_error = True

    result = flaky.invoke(
        {"name": "flaky", "args": {"x": "1"}, "id": "c1", "type": "tool_call"},
        config={"callbacks": [handler]},
    )
    assert result.status == "error"
    span = exporter.span("flaky")
    assert span.status is SpanStatus.ERROR
    assert span.attributes[attr.TOOL_CALL_ID] == "c1"


def test_retriever_span_counts_documents(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    docs = [
        Document("paris is the capital of france", metadata={"score": 0.4}),
        Document("the capital of italy is rome", metadata={"score": 0.9}),
        Document("bananas are yellow"),
    ]
    retriever = FakeRetriever(documents=docs)
    chain = retriever | RunnableLambda(lambda ds: len(ds), name="count")
    assert chain.invoke("capital city", config={"callbacks": [handler]}) == 2

    span = exporter.span("FakeRetriever")
    assert span.kind is SpanKind.RETRIEVAL
    assert span.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] == 2
    assert span.attributes[attr.RETRIEVAL_TOP_SCORES] == (0.9, 0.4)
    assert attr.RETRIEVAL_DOCUMENTS not in span.attributes  # content capture is off
    assert attr.RETRIEVAL_QUERY not in span.attributes


def test_memory_and_agent_markers_set_kinds_but_are_not_inherited(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    # Inside a marked runnable the tag form is needed: LangChain lets the parent's metadata
    # value win over the child's, while tags are merged.
    load_memory = RunnableLambda(lambda x: {"q": x, "history": []}, name="load_memory").with_config(
        tags=["agentos_kind:memory"]
    )
    save_memory = RunnableLambda(lambda d: d["q"], name="save_memory").with_config(
        metadata={"agentos_kind": "memory"}
    )
    inner = load_memory | RunnableLambda(lambda d: d, name="use") | save_memory
    agent = inner.with_config(run_name="my_agent", metadata={"agentos_kind": "agent"})
    agent.invoke("hi", config={"callbacks": [handler]})
    save_memory.invoke({"q": "standalone"}, config={"callbacks": [handler]})

    kinds = {s.name: s.kind for t in exporter.traces for s in t.spans}
    assert kinds == {
        "my_agent": SpanKind.AGENT,
        "load_memory": SpanKind.MEMORY,
        "use": SpanKind.CHAIN,  # inherits both markers: neither is its own
        "save_memory": SpanKind.MEMORY,  # standalone: its metadata marker applies
    }
    inside = [s for s in exporter.traces[0].spans if s.name == "save_memory"]
    assert inside[0].kind is SpanKind.CHAIN  # the agent's metadata value overrode its own


# -- identity, tags, content --------------------------------------------------------------


def test_user_and_session_on_root_span_and_trace_tags_kept(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    lcel().invoke(
        {"q": "hi"},
        config={
            "callbacks": [handler],
            "metadata": {"user_id": "alice", "session_id": "s-9"},
            "tags": ["prod"],
        },
    )
    trace = exporter.trace
    root = trace.root_span
    assert root is not None
    assert (root.attributes[attr.USER_ID], root.attributes[attr.SESSION_ID]) == ("alice", "s-9")
    assert (trace.user_id, trace.session_id) == ("alice", "s-9")
    assert trace.attributes[attr.USER_ID] == "alice"
    assert root.attributes[attr.TAGS] == ("prod",)
    # Children carry user tags, never LangChain's positional ones.
    assert exporter.span("FakeChatModel").attributes[attr.TAGS] == ("prod",)
    assert not any(attr.USER_ID in s.attributes for s in trace.spans if s is not root)


def _all_text(exporter: InMemoryExporter) -> str:
    return json.dumps([t.to_dict() for t in exporter.traces], default=str)


def test_content_not_recorded_by_default(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    lcel(FakeChatModel(replies=["SECRET-ANSWER-TEXT"])).invoke(
        {"q": "PRIVATE-QUESTION"}, config={"callbacks": [handler]}
    )
    text = _all_text(exporter)
    assert "PRIVATE-QUESTION" not in text and "SECRET-ANSWER-TEXT" not in text
    assert not any(
        k in s.attributes
        for s in exporter.trace.spans
        for k in (
            attr.INPUT_VALUE,
            attr.OUTPUT_VALUE,
            attr.LLM_INPUT_MESSAGES,
            attr.LLM_OUTPUT_MESSAGES,
        )
    )


def test_content_recorded_and_truncated_when_capture_is_on() -> None:
    tracer, exporter = traced(pricing=catalog(), capture_content=True, max_content_length=40)
    handler = AgentOSCallbackHandler(tracer=tracer)
    lcel(FakeChatModel(replies=["short answer"])).invoke(
        {"q": "Q" * 500}, config={"callbacks": [handler]}
    )

    llm = exporter.span("FakeChatModel")
    messages = llm.attributes[attr.LLM_INPUT_MESSAGES]
    assert messages.startswith('[{"content":"Be brief."') and "more chars]" in messages
    assert len(messages) < 80
    assert "short answer" in llm.attributes[attr.LLM_OUTPUT_MESSAGES]
    assert exporter.span("StrOutputParser").attributes[attr.OUTPUT_VALUE] == "short answer"
    assert "QQQQ" in exporter.span("RunnableSequence").attributes[attr.INPUT_VALUE]


def test_retriever_content_when_capture_is_on() -> None:
    tracer, exporter = traced(pricing=catalog(), capture_content=True)
    handler = AgentOSCallbackHandler(tracer=tracer)
    FakeRetriever(documents=[Document("alpha beta")]).invoke(
        "alpha", config={"callbacks": [handler]}
    )
    span = exporter.span("FakeRetriever")
    assert span.attributes[attr.RETRIEVAL_QUERY] == "alpha"
    assert "alpha beta" in span.attributes[attr.RETRIEVAL_DOCUMENTS]


def test_otel_env_variable_turns_capture_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    tracer, exporter = traced(pricing=catalog())
    handler = AgentOSCallbackHandler(tracer=tracer)
    lcel().invoke({"q": "from env"}, config={"callbacks": [handler]})
    assert "from env" in exporter.span("FakeChatModel").attributes[attr.LLM_INPUT_MESSAGES]


def test_tool_content_when_capture_is_on() -> None:
    tracer, exporter = traced(pricing=catalog(), capture_content=True)
    handler = AgentOSCallbackHandler(tracer=tracer)
    call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c9", "type": "tool_call"}
    get_weather.invoke(call, config={"callbacks": [handler]})
    span = exporter.span("get_weather")
    assert "Oslo" in span.attributes[attr.INPUT_VALUE]
    assert span.attributes[attr.OUTPUT_VALUE] == "sunny in Oslo"


@pytest.mark.parametrize("capture", [False, True])
def test_secrets_never_recorded(capture: bool) -> None:
    tracer, exporter = traced(pricing=catalog(), capture_content=capture)
    handler = AgentOSCallbackHandler(tracer=tracer)
    key = "sk-live-abcdefghijklmnopqrstuvwxyz123456"
    model = FakeChatModel(api_key=key)
    bound = model.bind(extra_headers={"Authorization": "Bearer abcdefghijklmnop"}, temperature=0.2)
    (PROMPT | bound).invoke({"q": f"my key is {key}"}, config={"callbacks": [handler]})

    text = _all_text(exporter)
    assert key not in text and "abcdefghijklmnop" not in text
    params = json.loads(exporter.span("FakeChatModel").attributes[attr.LLM_INVOCATION_PARAMS])
    assert params["api_key"] == "[REDACTED]"
    assert params["extra_headers"]["Authorization"] == "[REDACTED]"
    assert params["temperature"] == 0.2


# -- errors -------------------------------------------------------------------------------


def test_error_marks_failing_run_and_failing_ancestors_and_passes_through(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    failure = ModelFailure("provider is down")
    chain = lcel(FakeChatModel(error=failure))
    with pytest.raises(ModelFailure) as raised:
        chain.invoke({"q": "hi"}, config={"callbacks": [handler]})

    assert raised.value is failure  # the app's exception object, unchanged
    trace = exporter.trace
    statuses = {s.name: s.status for s in trace.spans}
    assert statuses == {
        "RunnableSequence": SpanStatus.ERROR,
        "ChatPromptTemplate": SpanStatus.OK,
        "FakeChatModel": SpanStatus.ERROR,
    }
    for name in ("RunnableSequence", "FakeChatModel"):
        span = exporter.span(name)
        assert span.attributes[attr.ERROR_TYPE] == "ModelFailure"
        assert span.attributes[attr.ERROR_MESSAGE] == "provider is down"
    assert handler.open_run_count == 0


async def test_async_error_passes_through_unchanged(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    failure = ModelFailure("async down")
    with pytest.raises(ModelFailure) as raised:
        await lcel(FakeChatModel(error=failure)).ainvoke(
            {"q": "hi"}, config={"callbacks": [handler]}
        )
    assert raised.value is failure
    assert (
        exporter.trace.root_span is not None and exporter.trace.root_span.status is SpanStatus.ERROR
    )


def test_abandoned_sync_stream_is_cancelled_not_error(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    stream = lcel(FakeChatModel(replies=["a b c d e f g"])).stream(
        {"q": "hi"}, config={"callbacks": [handler]}
    )
    next(stream)
    stream.close()

    trace = exporter.trace  # exported once the children LangChain keeps running have ended
    root = trace.root_span
    assert root is not None and root.status is SpanStatus.CANCELLED
    assert not any(s.status is SpanStatus.ERROR for s in trace.spans)
    assert all(s.ended for s in trace.spans)
    assert handler.open_run_count == 0


async def test_async_stream_aclose_is_cancelled_not_error(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    chain = lcel(FakeChatModel(replies=["a b c d e f g"]))
    stream = chain.astream({"q": "hi"}, config={"callbacks": [handler]})
    await stream.__anext__()
    await stream.aclose()
    # LangChain reports the root's GeneratorExit from a shielded task a few loop turns later
    # (and its inner generators only when the loop shuts down): the runs below the root
    # are cancelled with it.
    for _ in range(100):
        if exporter.traces:
            break
        await asyncio.sleep(0)

    statuses = {s.name: s.status for s in exporter.trace.spans}
    assert statuses["RunnableSequence"] is SpanStatus.CANCELLED
    assert statuses["FakeChatModel"] is SpanStatus.CANCELLED
    assert SpanStatus.ERROR not in statuses.values()
    assert all(s.ended for s in exporter.trace.spans)
    assert handler.open_run_count == 0


async def test_cancelled_task_is_cancelled_not_error(
    tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    chain = lcel(FakeChatModel(latency_s=30))
    task = asyncio.ensure_future(chain.ainvoke({"q": "slow"}, config={"callbacks": [handler]}))

    def model_started() -> bool:
        return any(s.kind is SpanKind.LLM for t in tracer.active_traces() for s in t.spans)

    while not model_started():
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # end callbacks run in shielded tasks
        if exporter.traces:
            break
        await asyncio.sleep(0)
    statuses = {s.name: s.status for s in exporter.trace.spans}
    assert statuses["RunnableSequence"] is SpanStatus.CANCELLED
    assert statuses["FakeChatModel"] is SpanStatus.CANCELLED
    assert handler.open_run_count == 0


# -- nesting under AgentOS spans ----------------------------------------------------------


def test_runs_nest_under_active_agentos_span(
    tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    with tracer.start_span("planner", SpanKind.AGENT) as planner:
        lcel().invoke({"q": "a"}, config={"callbacks": [handler], "metadata": {"user_id": "bob"}})
        lcel().invoke({"q": "b"}, config={"callbacks": [handler]})

    trace = exporter.trace
    assert trace.root_span is planner.record
    assert [c.name for c in planner.children] == ["RunnableSequence", "RunnableSequence"]
    assert all(s.trace_id == planner.trace_id for s in trace.spans)
    assert len(trace.spans) == 9
    assert trace.user_id == "bob"
    assert trace.usage_totals()["llm_calls"] == 2


async def test_async_runs_nest_under_active_agentos_span(
    tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    async def step(i: int) -> Span:
        with tracer.start_span(f"planner{i}", SpanKind.AGENT) as planner:
            await lcel().ainvoke({"q": "a"}, config={"callbacks": [handler]})
        return planner

    planners = await asyncio.gather(*(step(i) for i in range(20)))
    assert len(exporter.traces) == 20
    for planner in planners:
        assert [c.name for c in planner.children] == ["RunnableSequence"]
        assert len(planner.children[0].children) == 3


async def test_not_inline_handler_keeps_trees_and_nesting(tracer: Tracer) -> None:
    """Through LangChain's thread pool (copied contexts) parents and nesting still hold."""
    handler = AgentOSCallbackHandler(tracer=tracer, run_inline=False)
    assert handler.run_inline is False

    async def step(i: int) -> Span:
        with tracer.start_span(f"planner{i}", SpanKind.AGENT) as planner:
            await lcel().ainvoke({"q": "a"}, config={"callbacks": [handler]})
        return planner

    planners = await asyncio.gather(*(step(i) for i in range(10)))
    for planner in planners:
        (sequence,) = planner.children
        assert sorted(c.name for c in sequence.children) == [
            "ChatPromptTemplate",
            "FakeChatModel",
            "StrOutputParser",
        ]
    assert handler.open_run_count == 0


async def test_not_inline_handler_lets_other_handlers_see_async_llm_start(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Counting(BaseCallbackHandler):
        starts = 0

        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            Counting.starts += 1

    handler = AgentOSCallbackHandler(tracer=tracer, run_inline=False)
    await FakeUsageLLM().ainvoke("hi", config={"callbacks": [Counting(), handler]})
    assert Counting.starts == 1
    assert exporter.span("FakeUsageLLM").input_tokens == 7


# -- budgets ------------------------------------------------------------------------------


class RaisingBudget:
    """A budget processor in raise mode: refuses every LLM span."""

    def __init__(self) -> None:
        self.refused: list[Span] = []

    def on_start(self, span: Span) -> None:
        if span.kind is SpanKind.LLM:
            self.refused.append(span)
            raise BudgetExceeded("budget spent", key="gpt-4o-mini")

    def on_end(self, span: Span) -> None:
        return None


def test_budget_exceeded_reaches_the_app(
    tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    budget = RaisingBudget()
    tracer.add_span_processor(budget)
    with pytest.raises(BudgetExceeded, match="budget spent"):
        lcel().invoke({"q": "hi"}, config={"callbacks": [handler]})

    assert budget.refused and budget.refused[0].attributes[attr.LLM_REQUEST_MODEL] == "gpt-4o-mini"
    root = exporter.trace.root_span
    assert root is not None and root.status is SpanStatus.ERROR
    assert root.attributes[attr.ERROR_TYPE] == "BudgetExceeded"
    assert handler.open_run_count == 0


async def test_budget_exceeded_reaches_the_app_async(
    tracer: Tracer, handler: AgentOSCallbackHandler
) -> None:
    tracer.add_span_processor(RaisingBudget())
    with pytest.raises(BudgetExceeded):
        await lcel().ainvoke({"q": "hi"}, config={"callbacks": [handler]})


def test_budget_alert_in_raise_mode_stops_the_next_call() -> None:
    from agentos_obs.cost import BudgetAlert

    tracer, _ = traced(pricing=catalog())
    tracer.add_span_processor(BudgetAlert(budget_limit=1e-5, mode="raise"))
    handler = AgentOSCallbackHandler(tracer=tracer)
    chain = lcel(FakeChatModel(input_tokens=10_000, output_tokens=0))
    chain.invoke({"q": "1"}, config={"callbacks": [handler]})  # $0.01: over the limit
    with pytest.raises(BudgetExceeded):
        chain.invoke({"q": "2"}, config={"callbacks": [handler]})


def test_internal_failure_never_reaches_the_app(lenient: None, tracer: Tracer) -> None:
    from agentos_obs import testing

    class Broken:
        def on_start(self, span: Span) -> None:
            return None

        def on_end(self, span: Span) -> None:
            raise RuntimeError("processor bug")

    tracer.add_span_processor(Broken())
    handler = AgentOSCallbackHandler(tracer=tracer)
    assert handler.raise_error is False
    assert lcel().invoke({"q": "hi"}, config={"callbacks": [handler]}) == "hello world"
    assert sum(testing.failure_counts().values()) >= 1


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tracer": "nope"},
        {"stale_run_timeout_s": 0},
        {"stale_run_timeout_s": -1},
        {"sweep_interval_s": "x"},
    ],
)
def test_bad_configuration_raises_clear_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AgentOSCallbackHandler(**kwargs)


def test_no_argument_handler_reports_to_the_default_stack_resolved_lazily() -> None:
    from agentos_obs import stack

    stack.reset_stack()
    try:
        handler = AgentOSCallbackHandler()  # built before the stack exists or is configured
        seen: list[Any] = []
        stack.configure(service_name="lazy-stack", exporters=[seen.append])
        lcel().invoke({"q": "hi"}, config={"callbacks": [handler]})
        stack.get_tracer().force_flush()  # configured exporters run behind a queue
        assert len(seen) == 1 and seen[0].root_span.name == "RunnableSequence"
        assert handler.tracer is stack.get_tracer()
        assert stack.get_stack().dashboard.get_summary()["total_traces"] == 1
    finally:
        stack.reset_stack()
