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
from agentos_obs.tracing import SpanKind
from lc_fakes import Collector, FakeUsageChatModel

ORIGINAL_CONFIGURE = manager_module._configure
PROMPT = ChatPromptTemplate.from_messages([("human", "{q}")])


def lcel() -> Any:
    return PROMPT | FakeUsageChatModel() | StrOutputParser()


@pytest.fixture(autouse=True)
def _always_uninstrument() -> Iterator[None]:
    yield
    uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE


@pytest.fixture
def col() -> Collector:
    return Collector()


def _check_lcel_traces(col: Collector, expected: int) -> None:
    assert len(col.traces) == expected
    for trace in col.traces:
        assert len(trace.spans) == 4, [s.name for s in trace.spans]
        root = trace.root_span
        assert root is not None and root.name == "RunnableSequence"
        assert sorted(c.name for c in root.children) == [
            "ChatPromptTemplate",
            "FakeUsageChatModel",
            "StrOutputParser",
        ]


def test_every_run_is_traced_without_callbacks(col: Collector) -> None:
    handler = instrument(tracer=col.tracer)
    assert isinstance(handler, AgentOSCallbackHandler)
    assert lcel().invoke({"q": "hi"}) == "hello world"
    _check_lcel_traces(col, 1)
    assert handler.open_run_count == 0


def test_instrument_is_idempotent(col: Collector) -> None:
    first = instrument(tracer=col.tracer)
    assert instrument() is first
    assert instrument(tracer=col.tracer) is first
    lcel().invoke({"q": "hi"})
    _check_lcel_traces(col, 1)  # one handler: no duplicate spans


def test_plain_thread_pool_workers_are_traced(col: Collector) -> None:
    chain = lcel()
    pool = ThreadPoolExecutor(max_workers=4)
    pool.submit(lambda: None).result()  # a worker thread that exists before instrument()
    instrument(tracer=col.tracer)
    threads: set[int] = set()

    def work(i: int) -> str:
        threads.add(threading.get_ident())
        return str(chain.invoke({"q": str(i)}))

    with pool:
        results = list(pool.map(work, range(40)))

    assert results == ["hello world"] * 40
    assert threading.get_ident() not in threads
    _check_lcel_traces(col, 40)


def test_plain_threads_are_traced(col: Collector) -> None:
    instrument(tracer=col.tracer)
    chain = lcel()
    workers = [threading.Thread(target=chain.invoke, args=({"q": "t"},)) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _check_lcel_traces(col, 6)


async def test_asyncio_tasks_are_traced(col: Collector) -> None:
    instrument(tracer=col.tracer)
    chain = lcel()
    await asyncio.gather(*(chain.ainvoke({"q": str(i)}) for i in range(50)))
    _check_lcel_traces(col, 50)


def test_langgraph_is_traced_globally(col: Collector) -> None:
    class State(TypedDict):
        n: int

    graph = StateGraph(State)
    graph.add_node("inc", lambda s: {"n": s["n"] + 1})
    graph.add_edge(START, "inc")
    instrument(tracer=col.tracer)
    assert graph.compile().invoke({"n": 1}) == {"n": 2}
    root = col.trace.root_span
    assert root is not None and root.kind is SpanKind.AGENT
    assert [c.name for c in root.children] == ["inc"]


def test_explicit_handler_at_the_root_gives_no_duplicates(col: Collector) -> None:
    instrument(tracer=col.tracer)
    explicit = AgentOSCallbackHandler(tracer=col.tracer)
    lcel().invoke({"q": "hi"}, config={"callbacks": [explicit]})
    _check_lcel_traces(col, 1)


def test_explicit_handler_for_another_tracer_wins_at_the_root(col: Collector) -> None:
    other = Collector()
    instrument(tracer=col.tracer)
    lcel().invoke({"q": "hi"}, config={"callbacks": [AgentOSCallbackHandler(tracer=other.tracer)]})
    _check_lcel_traces(other, 1)
    assert col.traces == []


def test_explicit_handler_inside_a_traced_run_gives_no_duplicates(col: Collector) -> None:
    instrument(tracer=col.tracer)
    explicit = AgentOSCallbackHandler(tracer=col.tracer)
    inner = lcel()

    def outer(q: str, config: Any) -> str:
        # An app passing its own handler (plus the inherited config) to an inner call.
        callbacks = config["callbacks"]
        callbacks.add_handler(explicit, inherit=True)
        return str(inner.invoke({"q": q}, config={"callbacks": callbacks}))

    RunnableLambda(outer, name="outer").invoke("x")

    trace = col.trace
    names = sorted(s.name for s in trace.spans)
    assert names == sorted(
        ["outer", "RunnableSequence", "ChatPromptTemplate", "FakeUsageChatModel", "StrOutputParser"]
    )
    assert explicit.open_run_count == 0


def test_uninstrument_stops_tracing_and_restores_langchain(col: Collector) -> None:
    handler = instrument(tracer=col.tracer)
    assert manager_module._configure is not ORIGINAL_CONFIGURE
    uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE
    assert lc.instrumented_handler() is None
    lcel().invoke({"q": "hi"})
    asyncio.run(lcel().ainvoke({"q": "hi"}))
    assert col.traces == []
    assert handler.open_run_count == 0
    uninstrument()  # idempotent
    assert manager_module._configure is ORIGINAL_CONFIGURE


def test_run_open_at_uninstrument_finishes_cleanly(col: Collector) -> None:
    handler = instrument(tracer=col.tracer)
    stream = lcel().stream({"q": "hi"})
    first = next(stream)
    uninstrument()
    rest = "".join(stream)
    assert first + rest == "hello world"
    _check_lcel_traces(col, 1)
    assert handler.open_run_count == 0
    lcel().invoke({"q": "after"})
    assert len(col.traces) == 1


def test_instrument_again_after_uninstrument(col: Collector) -> None:
    instrument(tracer=col.tracer)
    uninstrument()
    instrument(tracer=col.tracer)
    lcel().invoke({"q": "hi"})
    _check_lcel_traces(col, 1)


def test_a_wrapper_installed_after_ours_is_left_in_place(col: Collector) -> None:
    instrument(tracer=col.tracer)
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
        assert calls and col.traces == []  # our wrapper, still in their chain, adds nothing
    finally:
        manager_module._configure = ORIGINAL_CONFIGURE


def test_instrument_rejects_a_non_tracer() -> None:
    with pytest.raises(ConfigurationError):
        instrument(tracer="nope")  # type: ignore[arg-type]


def test_package_level_instrument_uses_this_integration(col: Collector) -> None:
    import agentos_obs

    active = agentos_obs.instrument(tracer=col.tracer, llama_index=False)
    try:
        assert active["langchain"] is True
        lcel().invoke({"q": "hi"})
        _check_lcel_traces(col, 1)
    finally:
        agentos_obs.uninstrument()
    assert manager_module._configure is ORIGINAL_CONFIGURE
