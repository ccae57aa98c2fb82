"""LlamaIndex integration: trees, kinds, tokens and cost, chat engines, agents, errors,
concurrency, content capture. Offline, with real LlamaIndex classes (tests/li_fakes.py)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.tools import FunctionTool

import agentos_obs.attributes as attr
from agentos_obs import testing
from agentos_obs.integrations import set_usage_options
from agentos_obs.integrations.llama_index import AgentOSSpanHandler, instrument, uninstrument
from agentos_obs.testing import InMemoryExporter
from agentos_obs.tracing import CostStatus, SpanKind, SpanStatus, Tracer, TracerConfig
from li_fakes import (
    ANTHROPIC_USAGE,
    DOCS,
    OPENAI_USAGE,
    UsageFunctionCallingLLM,
    UsageLLM,
    check_tree,
    make_index,
    make_tool,
    tree,
    weather,
)

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return make_index()


def by_name(trace: Any, name: str) -> list[Any]:
    return [s for s in trace.spans if s.name == name]


# -- query engine ---------------------------------------------------------------------------


def test_query_engine_tree_names_and_kinds(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    response = index.as_query_engine(llm=UsageLLM()).query(QUESTION)

    assert str(response) == "Paris is the capital of France."
    trace = exporter.trace
    check_tree(trace)
    root = trace.root_span
    assert root.name == "RetrieverQueryEngine.query"
    assert root.kind is SpanKind.CHAIN
    assert trace.name == "RetrieverQueryEngine.query"
    kinds = {s.name: s.kind for s in trace.spans}
    assert kinds["VectorIndexRetriever.retrieve"] is SpanKind.RETRIEVAL
    assert kinds["MockEmbedding.get_query_embedding"] is SpanKind.EMBEDDING
    assert kinds["CompactAndRefine.synthesize"] is SpanKind.CHAIN
    assert kinds["UsageLLM.predict"] is SpanKind.LLM
    assert kinds["UsageLLM.complete"] is SpanKind.LLM
    # Names are readable: no uuid left anywhere.
    assert all(len(s.name) < 60 and s.name.count("-") == 0 for s in trace.spans)
    # Parents come from LlamaIndex's ids: complete < predict < ... < query.
    complete = by_name(trace, "UsageLLM.complete")[0]
    chain = []
    node = complete
    while node is not None:
        chain.append(node.name)
        node = node.parent
    assert chain[:2] == ["UsageLLM.complete", "UsageLLM.predict"]
    assert chain[-3:] == [
        "CompactAndRefine.synthesize",
        "RetrieverQueryEngine._query",
        "RetrieverQueryEngine.query",
    ]
    for span in trace.spans:
        assert span.attributes[attr.FRAMEWORK] == "llama_index"
        assert (
            span.attributes[attr.RUN_ID].startswith(span.name + "-") or span.kind is SpanKind.TOOL
        )


def test_retrieval_and_embedding_attributes(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=UsageLLM(), similarity_top_k=3).query(QUESTION)
    trace = exporter.trace
    retrieve = by_name(trace, "VectorIndexRetriever.retrieve")[0]
    assert retrieve.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] == 3
    scores = retrieve.attributes[attr.RETRIEVAL_TOP_SCORES]
    assert len(scores) == 3 and list(scores) == sorted(scores, reverse=True)
    assert attr.RETRIEVAL_QUERY not in retrieve.attributes  # content capture is off
    embed = by_name(trace, "MockEmbedding.get_query_embedding")[0]
    assert embed.attributes["embedding.model_name"] == "text-embedding-3-small"
    assert embed.attributes["embedding.input_count"] == 1


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (
            "openai",
            dict(
                input_tokens=OPENAI_USAGE["input"],
                output_tokens=OPENAI_USAGE["output"],
                cache_read_tokens=OPENAI_USAGE["cache_read"],
                cache_write_tokens=0,
                reasoning_tokens=OPENAI_USAGE["reasoning"],
            ),
        ),
        (
            "anthropic",
            dict(
                # Anthropic's input_tokens excludes cache tokens; AgentOS input includes them.
                input_tokens=ANTHROPIC_USAGE["uncached_input"]
                + ANTHROPIC_USAGE["cache_read"]
                + ANTHROPIC_USAGE["cache_write"],
                output_tokens=ANTHROPIC_USAGE["output"],
                cache_read_tokens=ANTHROPIC_USAGE["cache_read"],
                cache_write_tokens=ANTHROPIC_USAGE["cache_write"],
                reasoning_tokens=0,
            ),
        ),
        (
            "gemini",
            dict(
                input_tokens=OPENAI_USAGE["input"],
                output_tokens=OPENAI_USAGE["output"],  # candidates + thoughts
                cache_read_tokens=OPENAI_USAGE["cache_read"],
                cache_write_tokens=0,
                reasoning_tokens=OPENAI_USAGE["reasoning"],
            ),
        ),
        *[
            (
                shape,
                dict(
                    input_tokens=OPENAI_USAGE["input"],
                    output_tokens=OPENAI_USAGE["output"],
                    cache_read_tokens=0,
                    cache_write_tokens=0,
                    reasoning_tokens=0,
                ),
            )
            for shape in ("groq", "additional_kwargs")
        ],
        (
            "sdk",
            dict(
                input_tokens=OPENAI_USAGE["input"],
                output_tokens=OPENAI_USAGE["output"],
                cache_read_tokens=0,
                cache_write_tokens=0,
                reasoning_tokens=0,
            ),
        ),
    ],
)
def test_trace_tokens_equal_provider_usage_times_real_calls(
    handler: AgentOSSpanHandler,
    exporter: InMemoryExporter,
    index: VectorStoreIndex,
    shape: str,
    expected: dict[str, int],
) -> None:
    # "refine" over three nodes makes one LLM call per node: several real calls per query.
    model = {"anthropic": "claude-3-5-haiku-20241022", "gemini": "gemini-2.0-flash"}.get(
        shape, "gpt-4o-mini"
    )
    llm = UsageLLM(shape=shape, model=model, chat_model=True)
    engine = index.as_query_engine(llm=llm, similarity_top_k=3, response_mode="refine")
    engine.query(QUESTION)

    trace = exporter.trace
    calls = llm.calls
    assert calls >= 2  # several calls, each wrapped (predict > chat > complete)
    totals = trace.usage_totals()
    assert totals["llm_calls"] == calls
    for key, per_call in expected.items():
        assert totals[key] == per_call * calls, (key, tree(trace.root_span))
    # Tokens sit on the innermost call span only, never also on predict/chat wrappers.
    carriers = [s for s in trace.spans if s.has_usage]
    assert {s.name for s in carriers} == {"UsageLLM.complete"}
    assert len(carriers) == calls
    assert all(s.model_name == model for s in carriers)


def test_cost_from_the_price_catalog(
    handler: AgentOSSpanHandler, tracer: Tracer, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=UsageLLM(model="gpt-4o-mini")).query(QUESTION)
    trace = exporter.trace
    (call,) = [s for s in trace.spans if s.counts_usage]
    assert call.cost_usd is not None and call.cost_usd > 0
    assert call.provider is None  # a custom class: no provider guessed
    assert trace.total_cost_usd == pytest.approx(call.cost_usd)
    # Same figure the catalogue gives for the same usage.
    from agentos_obs.pricing import Usage

    expected = tracer.pricing.cost(
        "gpt-4o-mini",
        Usage(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            reasoning_tokens=call.reasoning_tokens,
        ),
    )
    assert call.cost_usd == pytest.approx(expected)


def test_unknown_model_is_unpriced_not_free(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=UsageLLM(model="my-private-model-7")).query(QUESTION)
    trace = exporter.trace
    (call,) = [s for s in trace.spans if s.counts_usage]
    assert call.cost_usd is None
    assert call.attributes[attr.LLM_UNPRICED] is True
    assert trace.usage_totals()["unpriced_llm_calls"] == 1


def test_llm_without_usage_is_estimated_and_marked(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=UsageLLM(shape="none")).query(QUESTION)
    trace = exporter.trace
    (call,) = [r for r in trace.spans if r.llm_call]
    assert call.cost_status is CostStatus.ESTIMATED
    assert call.attributes[attr.LLM_USAGE_ESTIMATED] is True
    assert call.attributes[attr.LLM_USAGE_ESTIMATE_METHOD] == "o200k_base"
    assert call.input_tokens > 0 and call.output_tokens > 0
    assert call.model == "gpt-4o-mini"  # from the LLM's configuration


def test_llm_without_usage_and_no_estimate_records_no_tokens(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    previous = set_usage_options(estimate=False)
    try:
        index.as_query_engine(llm=UsageLLM(shape="none")).query(QUESTION)
    finally:
        set_usage_options(estimate=previous.estimate)
    trace = exporter.trace
    assert trace.total_tokens == 0
    (call,) = [r for r in trace.spans if r.llm_call]
    assert call.cost_status is CostStatus.NO_USAGE  # counted, never silent
    complete = by_name(trace, "UsageLLM.complete")[0]
    assert complete.model_name == "gpt-4o-mini"  # from the LLM's configuration


# -- chat engine and agent ------------------------------------------------------------------


def test_chat_engine(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    llm = UsageLLM(chat_model=True)
    engine = index.as_chat_engine(chat_mode="condense_plus_context", llm=llm)
    engine.chat("Hello")
    engine.chat("And the capital of France?")

    assert len(exporter.traces) == 2
    for trace in exporter.traces:
        check_tree(trace)
        assert trace.root_span.name == "CondensePlusContextChatEngine.chat"
        assert any(s.kind is SpanKind.RETRIEVAL for s in trace.spans)
    total = sum(t.total_tokens for t in exporter.traces)
    per_call = OPENAI_USAGE["input"] + OPENAI_USAGE["output"]
    assert total == per_call * llm.calls
    assert llm.calls >= 3  # the second turn condenses the question first


async def test_function_agent_with_a_tool(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    agent = FunctionAgent(
        name="calculator", tools=[make_tool("adder")], llm=UsageFunctionCallingLLM()
    )
    result = await agent.run("add two and three")

    assert "Tool calls complete" in str(result)
    trace = exporter.trace
    check_tree(trace)
    root = trace.root_span
    assert root.kind is SpanKind.AGENT
    assert root.name == "FunctionAgent.run"
    assert root.attributes[attr.AGENT_NAME] == "calculator"
    (tool,) = [s for s in trace.spans if s.kind is SpanKind.TOOL]
    assert tool.name == "adder"
    assert tool.attributes[attr.TOOL_NAME] == "adder"
    assert tool.parent is not None and tool.parent.name == "BaseWorkflowAgent.call_tool"
    llm_calls = [s for s in trace.spans if s.counts_usage]
    assert len(llm_calls) == 2  # one call asks for the tool, one answers
    assert all(s.name == "UsageFunctionCallingLLM.astream_chat" for s in llm_calls)
    assert all(s.ancestor(SpanKind.AGENT) is root for s in llm_calls)
    # Helpers on the LLM object are not LLM calls.
    prepare = [s for s in trace.spans if s.name.endswith("_prepare_chat_with_tools")]
    assert prepare and all(s.kind is SpanKind.CHAIN for s in prepare)


async def test_workflow_run_is_an_agent_span(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step

    class Echo(Workflow):
        @step
        async def echo(self, ev: StartEvent) -> StopEvent:
            return StopEvent(result=ev.get("text"))

    assert await Echo().run(text="hi") == "hi"
    trace = exporter.trace
    assert trace.root_span.name == "Echo.run"
    assert trace.root_span.kind is SpanKind.AGENT
    assert any(s.name.endswith("echo") and s.kind is SpanKind.CHAIN for s in trace.spans)


def test_memory_reads_are_memory_spans(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter
) -> None:
    dispatcher = get_dispatcher(__name__)

    class TracedMemory(ChatMemoryBuffer):
        @dispatcher.span
        def get(self, input: str | None = None, **kwargs: Any) -> Any:
            return super().get(input=input, **kwargs)

    TracedMemory.from_defaults().get()
    (span,) = exporter.trace.spans
    assert span.kind is SpanKind.MEMORY
    assert span.name == "TracedMemory.get"


# -- errors ---------------------------------------------------------------------------------


def test_error_passes_through_unchanged_and_marks_spans(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    # Not ValueError: the refine synthesizer catches that one as a parse failure.
    boom = ConnectionError("provider said no")
    engine = index.as_query_engine(llm=UsageLLM(error=boom))
    with pytest.raises(ConnectionError) as caught:
        engine.query(QUESTION)
    assert caught.value is boom

    trace = exporter.trace
    check_tree(trace)
    complete = by_name(trace, "UsageLLM.complete")[0]
    assert complete.status is SpanStatus.ERROR
    assert complete.attributes[attr.ERROR_TYPE] == "ConnectionError"
    assert complete.attributes[attr.ERROR_MESSAGE] == "provider said no"
    node = complete
    while node is not None:  # every level up to the root was dropped with the error
        assert node.status is SpanStatus.ERROR, node
        node = node.parent
    assert trace.status is SpanStatus.ERROR
    # Siblings that finished before the failure stay OK.
    assert by_name(trace, "VectorIndexRetriever.retrieve")[0].status is SpanStatus.OK
    assert handler.open_span_count == 0


# -- concurrency ----------------------------------------------------------------------------


async def test_gather_of_100_aqueries_gives_100_separate_traces(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM())
    results = await asyncio.gather(*(engine.aquery(f"{QUESTION} #{i}") for i in range(100)))

    assert len(results) == 100
    assert len(exporter.traces) == 100
    assert len({t.trace_id for t in exporter.traces}) == 100
    per_call = OPENAI_USAGE["input"] + OPENAI_USAGE["output"]
    for trace in exporter.traces:
        check_tree(trace)
        assert trace.root_span.name == "RetrieverQueryEngine.aquery"
        assert trace.total_tokens == per_call
        assert len([s for s in trace.spans if s.counts_usage]) == 1
        shape = sorted(s.name for s in trace.spans)
        assert shape == sorted(s.name for s in exporter.traces[0].spans)
    assert handler.open_span_count == 0


def test_threads_with_a_copied_context_keep_their_parent(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM())
    dispatcher = get_dispatcher(__name__)

    @dispatcher.span
    def fan_out(copy: bool) -> list[Any]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            if copy:
                futures = [
                    pool.submit(copy_context().run, engine.query, QUESTION) for _ in range(2)
                ]
            else:
                futures = [pool.submit(engine.query, QUESTION) for _ in range(2)]
            return [f.result() for f in futures]

    fan_out(copy=True)
    trace = exporter.trace
    check_tree(trace)
    assert trace.root_span.name.endswith(".fan_out")  # a local function's qualname
    queries = by_name(trace, "RetrieverQueryEngine.query")
    assert len(queries) == 2 and all(q.parent is trace.root_span for q in queries)

    exporter.clear()
    fan_out(copy=False)
    # A plain pool thread has no LlamaIndex parent: each query is its own trace (documented).
    assert sorted(t.root_span.name.rpartition(".")[2] for t in exporter.traces) == [
        "fan_out",
        "query",
        "query",
    ]


def test_root_nests_under_the_active_agentos_span(
    handler: AgentOSSpanHandler, tracer: Tracer, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM())
    with tracer.start_span("handle_request", SpanKind.AGENT) as outer:
        engine.query(QUESTION)
        engine.query(QUESTION)
    trace = exporter.trace
    assert trace.root_span is outer.record
    queries = by_name(trace, "RetrieverQueryEngine.query")
    assert len(queries) == 2 and all(q.parent is outer.record for q in queries)
    assert trace.usage_totals()["llm_calls"] == 2


def test_concurrent_threads_each_get_their_own_trace(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=UsageLLM())
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        for _ in range(5):
            engine.query(QUESTION)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(exporter.traces) == 20
    for trace in exporter.traces:
        check_tree(trace)
        assert len(trace.spans) == len(exporter.traces[0].spans)
    assert handler.open_span_count == 0


# -- content, tags --------------------------------------------------------------------------


def test_content_is_not_recorded_by_default(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    content_keys = {
        attr.INPUT_VALUE,
        attr.OUTPUT_VALUE,
        attr.LLM_INPUT_MESSAGES,
        attr.LLM_OUTPUT_MESSAGES,
        attr.RETRIEVAL_QUERY,
        attr.RETRIEVAL_DOCUMENTS,
    }
    for span in exporter.trace.spans:
        assert not content_keys & set(span.attributes), span


def test_content_capture_with_secret_redaction(index: VectorStoreIndex) -> None:
    tracer = Tracer(config=TracerConfig(capture_content=True, max_content_length=300))
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    instrument(tracer=tracer)
    try:
        secret = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
        index.as_query_engine(llm=UsageLLM()).query(f"{QUESTION} my key is {secret}")
        FunctionTool.from_defaults(fn=weather).call(city="Paris", api_key="hunter2-plain")
    finally:
        uninstrument()
    query_trace, tool_trace = exporter.traces
    root = query_trace.root_span
    assert QUESTION in root.attributes[attr.INPUT_VALUE]
    assert secret not in root.attributes[attr.INPUT_VALUE]
    assert "[REDACTED]" in root.attributes[attr.INPUT_VALUE]
    assert root.attributes[attr.OUTPUT_VALUE] == "Paris is the capital of France."
    retrieve = by_name(query_trace, "VectorIndexRetriever.retrieve")[0]
    assert QUESTION in retrieve.attributes[attr.RETRIEVAL_QUERY]
    # MockEmbedding ties every score, so which documents come back is arbitrary.
    assert any(doc in retrieve.attributes[attr.RETRIEVAL_DOCUMENTS] for doc in DOCS)
    complete = by_name(query_trace, "UsageLLM.complete")[0]
    assert "capital of France" in complete.attributes[attr.LLM_INPUT_MESSAGES]
    assert secret not in complete.attributes[attr.LLM_INPUT_MESSAGES]
    assert complete.attributes[attr.LLM_OUTPUT_MESSAGES] == "Paris is the capital of France."
    assert all(
        len(v) <= 300 + 40
        for s in query_trace.spans
        for v in s.attributes.values()
        if isinstance(v, str)
    )
    tool = tool_trace.root_span
    assert tool.kind is SpanKind.TOOL
    assert "hunter2" not in tool.attributes[attr.INPUT_VALUE]  # redacted by its key name
    assert tool.name == "weather"
    assert "Paris" in tool.attributes[attr.INPUT_VALUE]
    assert tool.attributes[attr.OUTPUT_VALUE] == "Paris: sunny"
    assert testing.failure_counts() == {}


def test_instrument_tags_set_user_and_session(
    handler: AgentOSSpanHandler, exporter: InMemoryExporter, index: VectorStoreIndex
) -> None:
    with instrument_tags({"user.id": "u-42", "session_id": "s-7", "tenant": "acme"}):
        index.as_query_engine(llm=UsageLLM()).query(QUESTION)
    trace = exporter.trace
    assert trace.user_id == "u-42"
    assert trace.session_id == "s-7"
    assert trace.root_span.attributes["llama_index.tag.tenant"] == "acme"
