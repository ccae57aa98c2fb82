"""Global opt-in: instrument() traces every LangChain run, in every thread and task.

It goes through LangChain's public ``register_configure_hook``; the tests that build
managers with the public ``CallbackManager.configure`` fail first if LangChain stops
honouring the hook the way global mode uses it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.callbacks import manager as manager_module
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import START, StateGraph

import agentos_obs.integrations.langchain as lc
from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations.langchain import AgentOSCallbackHandler, instrument, uninstrument
from agentos_obs.testing import FakeChatModel, InMemoryExporter
from agentos_obs.tracing import SpanKind, Tracer
from conftest import traced
from lc_fakes import catalog

# Read only to check that global mode never replaces LangChain's function.
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
        assert sorted(c.name for c in trace.children(root.span_id)) == [
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
    assert [c.name for c in exporter.trace.children(root.span_id)] == ["inc"]


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


def test_uninstrument_stops_tracing(tracer: Tracer, exporter: InMemoryExporter) -> None:
    handler = instrument(tracer=tracer)
    uninstrument()
    assert lc.instrumented_handler() is None
    lcel().invoke({"q": "hi"})
    asyncio.run(lcel().ainvoke({"q": "hi"}))
    assert exporter.traces == []
    assert handler.open_run_count == 0
    assert ours_in(CallbackManager.configure()) == []
    uninstrument()  # idempotent
    assert ours_in(CallbackManager.configure()) == []


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


# -- the hook, seen through LangChain's public configure ---------------------------------------


def ours_in(manager: Any) -> list[AgentOSCallbackHandler]:
    return [h for h in manager.handlers if isinstance(h, AgentOSCallbackHandler)]


def _configure_everywhere() -> list[Any]:
    """Managers built by sync and async configure in this thread, a plain thread and a
    thread-pool worker that existed before instrument() (each starts with its own context)."""
    managers: list[Any] = []

    def build() -> None:
        managers.append(CallbackManager.configure())
        managers.append(AsyncCallbackManager.configure())
        managers.append(CallbackManager.configure(inheritable_callbacks=[], local_tags=["t"]))

    build()
    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(build).result()
    return managers


def test_every_configured_manager_gets_the_one_handler_inheritable(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: None).result()
        handler = instrument(tracer=tracer)
        managers = _configure_everywhere()
        managers.append(pool.submit(CallbackManager.configure).result())
    assert len(managers) == 10
    for manager in managers:
        # The same object every time: nothing is built per configure.
        assert ours_in(manager) == [handler] and manager.handlers[0] is handler
        assert any(h is handler for h in manager.inheritable_handlers)
    uninstrument()
    assert all(ours_in(m) == [] for m in _configure_everywhere())


def test_instrument_cycles_keep_one_hook(tracer: Tracer, exporter: InMemoryExporter) -> None:
    from langchain_core.tracers import context

    instrument(tracer=tracer)
    # LangChain's private list, read only to count: a hook is registered once per process.
    hooks = len(context._configure_hooks)
    for _ in range(5):
        uninstrument()
        handler = instrument(tracer=tracer)
    assert len(context._configure_hooks) == hooks
    assert ours_in(CallbackManager.configure()) == [handler]
    assert manager_module._configure is ORIGINAL_CONFIGURE
    lcel().invoke({"q": "hi"})
    _check_lcel_traces(exporter, 1)


def test_explicit_handler_in_the_callbacks_wins_over_the_hook(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    instrument(tracer=tracer)
    explicit = AgentOSCallbackHandler(tracer=traced()[0])
    assert ours_in(CallbackManager.configure(inheritable_callbacks=[explicit])) == [explicit]
    assert ours_in(CallbackManager.configure(local_callbacks=[explicit])) == [explicit]


def test_instrument_again_switches_new_traces_to_the_new_tracer(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    other_tracer, other = traced()
    handler = instrument(tracer=tracer)
    lcel().invoke({"q": "one"})
    assert instrument(tracer=other_tracer) is handler
    lcel().invoke({"q": "two"})
    _check_lcel_traces(exporter, 1)
    _check_lcel_traces(other, 1)
    with pytest.raises(ConfigurationError):
        handler.set_tracer("nope")  # type: ignore[arg-type]


def test_a_manager_kept_from_before_uninstrument_starts_no_trace(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    instrument(tracer=tracer)
    kept = CallbackManager.configure()  # holds the global handler
    uninstrument()
    lcel().invoke({"q": "hi"}, config={"callbacks": kept})
    assert exporter.traces == []


def test_explicit_handler_for_another_tracer_inside_a_traced_run(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    """Another destination is not a duplicate: the inner call is traced in both."""
    instrument(tracer=tracer)
    other_tracer, other = traced()
    explicit = AgentOSCallbackHandler(tracer=other_tracer)
    inner = lcel()

    def outer(q: str, config: Any) -> str:
        callbacks = config["callbacks"]
        callbacks.add_handler(explicit, inherit=True)
        return str(inner.invoke({"q": q}, config={"callbacks": callbacks}))

    RunnableLambda(outer, name="outer").invoke("x")
    assert sorted(s.name for s in exporter.trace.spans) == sorted(
        ["outer", "RunnableSequence", "ChatPromptTemplate", "FakeChatModel", "StrOutputParser"]
    )
    _check_lcel_traces(other, 1)
    assert explicit.open_run_count == 0


async def test_explicit_handler_inside_a_traced_async_run_gives_no_duplicates(
    tracer: Tracer,
    exporter: InMemoryExporter,
) -> None:
    handler = instrument(tracer=tracer)
    explicit = AgentOSCallbackHandler(tracer=tracer)
    inner = lcel()

    async def outer(q: str, config: Any) -> str:
        callbacks = config["callbacks"]
        callbacks.add_handler(explicit, inherit=True)
        return str(await inner.ainvoke({"q": q}, config={"callbacks": callbacks}))

    results = await asyncio.gather(
        *(RunnableLambda(outer, name="outer").ainvoke(str(i)) for i in range(20))
    )
    assert results == ["hello world"] * 20
    assert len(exporter.traces) == 20
    for trace in exporter.traces:
        assert len(trace.spans) == 5
        root = trace.root_span
        assert root is not None and root.name == "outer"
        assert [c.name for c in trace.children(root.span_id)] == ["RunnableSequence"]
    assert explicit.open_run_count == 0 and handler.open_run_count == 0


def test_explicit_handler_in_a_langgraph_node_gives_no_duplicates(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    class State(TypedDict):
        answer: str

    explicit = AgentOSCallbackHandler(tracer=tracer)
    inner = lcel()

    def ask(state: State, config: RunnableConfig) -> State:
        callbacks: Any = config["callbacks"]
        callbacks.add_handler(explicit, inherit=True)
        return {"answer": str(inner.invoke({"q": "hi"}, config={"callbacks": callbacks}))}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    instrument(tracer=tracer)
    assert graph.compile().invoke({"answer": ""}) == {"answer": "hello world"}
    root = exporter.trace.root_span
    assert root is not None and root.kind is SpanKind.AGENT
    node = next(c for c in exporter.trace.children(root.span_id) if c.name == "ask")
    assert [c.name for c in exporter.trace.children(node.span_id)] == ["RunnableSequence"]
    assert len(exporter.find_spans("FakeChatModel")) == 1
    assert explicit.open_run_count == 0
