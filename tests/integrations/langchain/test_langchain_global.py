"""Global opt-in: instrument() traces every LangChain run, in every thread and task."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import manager as manager_module
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, StateGraph

import agentos_obs.integrations.langchain as lc
from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations.langchain import AgentOSCallbackHandler, instrument, uninstrument
from agentos_obs.testing import FakeChatModel, InMemoryExporter
from agentos_obs.tracing import SpanKind, Tracer
from conftest import traced
from lc_fakes import catalog

ORIGINAL_CONFIGURE = manager_module._configure
PROMPT = ChatPromptTemplate.from_messages([("human", "{q}")])


def lcel() -> Any:
    return PROMPT | FakeChatModel() | StrOutputParser()


@pytest.fixture(autouse=True)
def _always_uninstrument() -> Iterator[None]:
    yield
    uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE


def _check_lcel_traces(exporter: InMemoryExporter, expected: int) -> None:
    assert len(exporter.traces) == expected
    for trace in exporter.traces:
        assert len(trace.spans) == 4, [s.name for s in trace.spans]
        root = trace.root_span
        assert root is not None and root.name == "RunnableSequence"
        assert sorted(c.name for c in root.children) == [
            "ChatPromptTemplate",
            "FakeChatModel",
            "StrOutputParser",
        ]


def test_every_run_is_traced_without_callbacks(tracer: Tracer, exporter: InMemoryExporter) -> None:
    handler = instrument(tracer=tracer)
    assert isinstance(handler, AgentOSCallbackHandler)
    assert lcel().invoke({"q": "hi"}) == "hello world"
    _check_lcel_traces(exporter, 1)
    assert handler.open_run_count == 0


def test_instrument_is_idempotent(tracer: Tracer, exporter: InMemoryExporter) -> None:
    first = instrument(tracer=tracer)
    assert instrument() is first
    assert instrument(tracer=tracer) is first
    lcel().invoke({"q": "hi"})
    _check_lcel_traces(exporter, 1)  # one handler: no duplicate spans


def test_plain_thread_pool_workers_are_traced(tracer: Tracer, exporter: InMemoryExporter) -> None:
    chain = lcel()
    pool = ThreadPoolExecutor(max_workers=4)
    pool.submit(lambda: None).result()  # a worker thread that exists before instrument()
    instrument(tracer=tracer)
    threads: set[int] = set()

    def work(i: int) -> str:
        threads.add(threading.get_ident())
        return str(chain.invoke({"q": str(i)}))

    with pool:
        results = list(pool.map(work, range(40)))

    assert results == ["hello world"] * 40
    assert threading.get_ident() not in threads
    _check_lcel_traces(exporter, 40)


def test_plain_threads_are_traced(tracer: Tracer, exporter: InMemoryExporter) -> None:
    instrument(tracer=tracer)
    chain = lcel()
    workers = [threading.Thread(target=chain.invoke, args=({"q": "t"},)) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _check_lcel_traces(exporter, 6)


async def test_asyncio_tasks_are_traced(tracer: Tracer, exporter: InMemoryExporter) -> None:
    instrument(tracer=tracer)
    chain = lcel()
    await asyncio.gather(*(chain.ainvoke({"q": str(i)}) for i in range(50)))
    _check_lcel_traces(exporter, 50)


def test_langgraph_is_traced_globally(tracer: Tracer, exporter: InMemoryExporter) -> None:
    class State(TypedDict):
        n: int

    graph = StateGraph(State)
    graph.add_node("inc", lambda s: {"n": s["n"] + 1})
    graph.add_edge(START, "inc")
    instrument(tracer=tracer)
    assert graph.compile().invoke({"n": 1}) == {"n": 2}
    root = exporter.trace.root_span
    assert root is not None and root.kind is SpanKind.AGENT
    assert [c.name for c in root.children] == ["inc"]


def test_explicit_handler_at_the_root_gives_no_duplicates(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    instrument(tracer=tracer)
    explicit = AgentOSCallbackHandler(tracer=tracer)
    lcel().invoke({"q": "hi"}, config={"callbacks": [explicit]})
    _check_lcel_traces(exporter, 1)


def test_explicit_handler_for_another_tracer_wins_at_the_root(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    other, other_traces = traced(pricing=catalog())
    instrument(tracer=tracer)
    lcel().invoke({"q": "hi"}, config={"callbacks": [AgentOSCallbackHandler(tracer=other)]})
    _check_lcel_traces(other_traces, 1)
    assert exporter.traces == []


def test_explicit_handler_inside_a_traced_run_gives_no_duplicates(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    instrument(tracer=tracer)
    explicit = AgentOSCallbackHandler(tracer=tracer)
    inner = lcel()

    def outer(q: str, config: Any) -> str:
        # An app passing its own handler (plus the inherited config) to an inner call.
        callbacks = config["callbacks"]
        callbacks.add_handler(explicit, inherit=True)
        return str(inner.invoke({"q": q}, config={"callbacks": callbacks}))

    RunnableLambda(outer, name="outer").invoke("x")

    trace = exporter.trace
    names = sorted(s.name for s in trace.spans)
    assert names == sorted(
        ["outer", "RunnableSequence", "ChatPromptTemplate", "FakeChatModel", "StrOutputParser"]
    )
    assert explicit.open_run_count == 0


def test_uninstrument_stops_tracing_and_restores_langchain(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    handler = instrument(tracer=tracer)
    assert manager_module._configure is not ORIGINAL_CONFIGURE
    uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE
    assert lc.instrumented_handler() is None
    lcel().invoke({"q": "hi"})
    asyncio.run(lcel().ainvoke({"q": "hi"}))
    assert exporter.traces == []
    assert handler.open_run_count == 0
    uninstrument()  # idempotent
    assert manager_module._configure is ORIGINAL_CONFIGURE


def test_run_open_at_uninstrument_finishes_cleanly(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    handler = instrument(tracer=tracer)
    stream = lcel().stream({"q": "hi"})
    first = next(stream)
    uninstrument()
    rest = "".join(stream)
    assert first + rest == "hello world"
    _check_lcel_traces(exporter, 1)
    assert handler.open_run_count == 0
    lcel().invoke({"q": "after"})
    assert len(exporter.traces) == 1


def test_instrument_again_after_uninstrument(tracer: Tracer, exporter: InMemoryExporter) -> None:
    instrument(tracer=tracer)
    uninstrument()
    instrument(tracer=tracer)
    lcel().invoke({"q": "hi"})
    _check_lcel_traces(exporter, 1)


def test_a_wrapper_installed_after_ours_is_left_in_place(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    instrument(tracer=tracer)
    ours = manager_module._configure
    calls: list[int] = []

    def someone_elses(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return ours(*args, **kwargs)

    manager_module._configure = someone_elses
    try:
        uninstrument()
        assert manager_module._configure is someone_elses  # not ours to remove
        lcel().invoke({"q": "hi"})
        assert calls and exporter.traces == []  # our wrapper, still in their chain, adds nothing
    finally:
        manager_module._configure = ORIGINAL_CONFIGURE


def test_instrument_rejects_a_non_tracer() -> None:
    with pytest.raises(ConfigurationError):
        instrument(tracer="nope")  # type: ignore[arg-type]


def test_package_level_instrument_uses_this_integration(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    import agentos_obs

    active = agentos_obs.instrument(tracer=tracer, llama_index=False)
    try:
        assert active["langchain"] is True
        lcel().invoke({"q": "hi"})
        _check_lcel_traces(exporter, 1)
    finally:
        agentos_obs.uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE
