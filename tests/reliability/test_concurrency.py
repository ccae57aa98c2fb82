"""Concurrency stress: thousands of concurrent async runs and 16 threads sharing one handler.

The oracle is the tree one sequential run produces: its *shape* (span names and kinds,
nested, children sorted) and its usage. Under any concurrency every trace must have exactly
that shape and usage, every span its parent inside its own trace, and nothing may be left
open afterwards. Default sizes keep the suite quick; ``-m slow`` runs larger ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool

import agentos_obs.integrations.langchain as lc_integration
from agentos_obs import Span, Trace, Tracer
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import FakeChatModel, FakeRetriever, InMemoryExporter
from conftest import traced

from .conftest import assert_whole_trees

QUESTION = {"question": "What is the capital of France?"}


def shape(span: Span) -> tuple[Any, ...]:
    """A span subtree as nested (name, kind, children) with children in a canonical order."""
    return (span.name, span.kind.value, tuple(sorted(shape(c) for c in span.children)))


def signature(trace: Trace) -> tuple[Any, ...]:
    assert trace.root_span is not None
    totals = trace.usage_totals()
    return (
        shape(trace.root_span),
        totals["input_tokens"],
        totals["output_tokens"],
        len(trace.spans),
    )


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def chat_chain(latency_s: float = 0.0) -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | FakeChatModel(latency_s=latency_s) | StrOutputParser()


def agent_pipeline(latency_s: float = 0.0) -> Runnable[Any, Any]:
    """Nested runnables with a retriever and a tool (15 runs per invocation)."""
    retriever = FakeRetriever(documents=[Document(page_content="Paris is the capital of France")])

    def call_tool(inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, "weather": get_weather.invoke({"city": "Paris"})}

    def question(inputs: dict[str, Any]) -> str:
        return str(inputs["question"])

    def join(docs: list[Document]) -> str:
        return " ".join(d.page_content for d in docs)

    context: Runnable[Any, str] = RunnableLambda(question) | retriever | RunnableLambda(join)
    answer = (
        ChatPromptTemplate.from_messages([("human", "{context} {weather} {question}")])
        | FakeChatModel(latency_s=latency_s)
        | StrOutputParser()
    )
    return (
        RunnableLambda(lambda x: x).with_config(run_name="plan")
        | RunnablePassthrough.assign(context=context)
        | RunnableLambda(call_tool).with_config(run_name="call_tool")
        | answer
    ).with_config(run_name="agent")


def reference_signature(build: Callable[[], Runnable[Any, Any]]) -> tuple[Any, ...]:
    tracer, exporter = traced()
    build().invoke(QUESTION, config={"callbacks": [AgentOSCallbackHandler(tracer=tracer)]})
    assert len(exporter.traces) == 1
    return signature(exporter.traces[0])


def assert_all_like(
    tracer: Tracer, exporter: InMemoryExporter, expected: tuple[Any, ...], count: int
) -> None:
    assert len(exporter.traces) == count
    assert_whole_trees(exporter.traces)
    shapes = Counter(signature(t) for t in exporter.traces)
    assert shapes == Counter({expected: count}), f"{len(shapes)} different trace shapes"
    assert tracer.active_trace_count == 0


async def _gather(chain: Runnable[Any, Any], n: int, config: Any) -> list[Any]:
    return await asyncio.gather(*(chain.ainvoke(QUESTION, config=config) for _ in range(n)))


@pytest.mark.parametrize(
    "runs",
    [pytest.param(2000, id="2000"), pytest.param(10_000, id="10000", marks=pytest.mark.slow)],
)
def test_thousands_of_concurrent_async_runs_share_one_handler(runs: int) -> None:
    expected = reference_signature(chat_chain)
    tracer, exporter = traced()
    handler = AgentOSCallbackHandler(tracer=tracer)
    # A real await inside the model makes the runs interleave at every step.
    results = asyncio.run(_gather(chat_chain(latency_s=0.001), runs, {"callbacks": [handler]}))
    assert len(results) == runs and len(set(results)) == 1
    assert handler.open_run_count == 0
    assert_all_like(tracer, exporter, expected, runs)


def test_concurrent_async_agent_pipelines() -> None:
    expected = reference_signature(agent_pipeline)
    tracer, exporter = traced()
    handler = AgentOSCallbackHandler(tracer=tracer)
    asyncio.run(_gather(agent_pipeline(latency_s=0.001), 500, {"callbacks": [handler]}))
    assert handler.open_run_count == 0
    assert_all_like(tracer, exporter, expected, 500)


def _threads(n: int, per_thread: int, work: Callable[[], object]) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()  # all threads start together
            for _ in range(per_thread):
                work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


@pytest.mark.parametrize(
    "per_thread",
    [pytest.param(40, id="640-runs"), pytest.param(400, id="6400-runs", marks=pytest.mark.slow)],
)
def test_sixteen_threads_share_one_handler(per_thread: int) -> None:
    expected = reference_signature(agent_pipeline)
    tracer, exporter = traced()
    handler = AgentOSCallbackHandler(tracer=tracer)
    pipeline = agent_pipeline()
    _threads(16, per_thread, lambda: pipeline.invoke(QUESTION, config={"callbacks": [handler]}))
    assert handler.open_run_count == 0
    assert_all_like(tracer, exporter, expected, 16 * per_thread)


@pytest.fixture
def instrumented() -> Iterator[tuple[Tracer, InMemoryExporter]]:
    tracer, exporter = traced()
    lc_integration.instrument(tracer=tracer)
    try:
        yield tracer, exporter
    finally:
        lc_integration.uninstrument()


def test_global_mode_in_plain_thread_pool_and_asyncio_at_once(
    instrumented: InMemoryExporter,
) -> None:
    """Global mode: no callbacks passed; a plain ThreadPoolExecutor (16 workers) and an
    asyncio.gather running at the same time."""
    tracer, exporter = instrumented
    expected = signature_of_global_run()
    exporter.clear()
    chain = chat_chain(latency_s=0.001)

    def run_async() -> None:
        asyncio.run(_gather(chain, 300, None))

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(chain.invoke, QUESTION) for _ in range(320)]
        async_thread = threading.Thread(target=run_async)
        async_thread.start()
        for f in futures:
            f.result()
        async_thread.join()
    assert_all_like(tracer, exporter, expected, 620)


def signature_of_global_run() -> tuple[Any, ...]:
    return reference_signature(chat_chain)


def test_llama_index_queries_from_sixteen_threads_and_asyncio() -> None:
    pytest.importorskip("llama_index.core")
    from contextvars import copy_context

    import agentos_obs.integrations.llama_index as li_integration
    from li_fakes import UsageLLM, make_index

    engine = make_index().as_query_engine(llm=UsageLLM())
    tracer, exporter = traced()
    li_integration.instrument(tracer=tracer)
    try:
        engine.query("capital of France?")
        asyncio.run(engine.aquery("capital of France?"))
        assert len(exporter.traces) == 2
        expected_sync, expected_async = (signature(t) for t in exporter.traces)
        exporter.clear()
        _threads(16, 10, lambda: copy_context().run(engine.query, "capital of France?"))

        async def many() -> None:
            await asyncio.gather(*(engine.aquery("capital of France?") for _ in range(200)))

        asyncio.run(many())
        handler = li_integration.instrumented()
        assert handler is not None and handler.open_span_count == 0
    finally:
        li_integration.uninstrument()
    assert len(exporter.traces) == 360
    assert_whole_trees(exporter.traces)
    shapes = Counter(signature(t) for t in exporter.traces)
    assert shapes == Counter({expected_sync: 160, expected_async: 200})
    assert tracer.active_trace_count == 0
