"""The handler survives anything LangChain (or a caller) sends and keeps no state after runs."""

from __future__ import annotations

import gc
import tracemalloc
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompts import ChatPromptTemplate

import agentos_obs.attributes as attr
from agentos_obs import testing
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import FakeChatModel, InMemoryExporter
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from conftest import traced
from lc_fakes import catalog

PROMPT = ChatPromptTemplate.from_messages([("human", "{q}")])


@pytest.fixture
def handler(tracer: Tracer) -> AgentOSCallbackHandler:
    return AgentOSCallbackHandler(tracer=tracer)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


# -- malformed events (strict mode is on: an internal failure would raise here) ------------


def test_events_for_unknown_runs_are_ignored(handler: AgentOSCallbackHandler) -> None:
    (unknown,) = ids(1)
    handler.on_chain_end({}, run_id=unknown)
    handler.on_chain_error(ValueError("x"), run_id=unknown)
    handler.on_llm_end(LLMResult(generations=[]), run_id=unknown)
    handler.on_llm_error(ValueError("x"), run_id=unknown)
    handler.on_llm_new_token("tok", run_id=unknown)
    handler.on_tool_end("out", run_id=unknown)
    handler.on_tool_error(ValueError("x"), run_id=unknown)
    handler.on_retriever_end([], run_id=unknown)
    handler.on_retriever_error(ValueError("x"), run_id=unknown)
    handler.on_retry(None, run_id=unknown)
    handler.on_custom_event("evt", {"a": 1}, run_id=unknown)
    handler.on_agent_action(None, run_id=unknown)
    handler.on_agent_finish(None, run_id=unknown)
    assert handler.open_run_count == 0
    assert testing.failure_counts() == {}


def test_missing_kwargs_and_none_payloads(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    # No run_id at all: nothing to end it by, so nothing is started.
    handler.on_chain_start(None, None)
    handler.on_chat_model_start(None, None)
    handler.on_llm_start(None, None)
    handler.on_tool_start(None, None)
    handler.on_retriever_start(None, None)
    handler.on_chain_end(None)
    handler.on_llm_new_token()
    assert handler.open_run_count == 0

    root, llm, tool, retriever = ids(4)
    handler.on_chain_start(None, None, run_id=root)
    handler.on_chat_model_start(None, None, run_id=llm, parent_run_id=root, metadata=None)
    handler.on_tool_start(None, None, run_id=tool, parent_run_id=root, tags=None)
    handler.on_retriever_start(None, None, run_id=retriever, parent_run_id=root)
    handler.on_llm_end(None, run_id=llm)
    handler.on_tool_end(None, run_id=tool)
    handler.on_retriever_end(None, run_id=retriever)
    handler.on_chain_end(None, run_id=root)

    spans = sorted((s.name, s.kind.value) for s in exporter.trace.spans)
    assert spans == [
        ("Retriever", "retrieval"),
        ("Unnamed", "chain"),
        ("Unnamed", "llm"),
        ("Unnamed", "tool"),
    ]
    assert exporter.span("Retriever").kind is SpanKind.RETRIEVAL
    assert handler.open_run_count == 0
    assert testing.failure_counts() == {}


@pytest.mark.parametrize(
    "payload",
    [
        42,
        "text",
        [1, 2, 3],
        {"generations": "nope"},
        LLMResult(generations=[[]]),
        LLMResult(
            generations=[[ChatGeneration(message=AIMessage("x", usage_metadata=None))]],
            llm_output={"token_usage": "bad"},
        ),
        LLMResult(
            generations=[],
            llm_output={"token_usage": {"prompt_tokens": -5, "completion_tokens": "abc"}},
        ),
        LLMResult(
            generations=[],
            llm_output={"usage": {"input_tokens": 3, "output_tokens": 4}, "model": 7},
        ),
    ],
)
def test_odd_llm_end_payloads(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler, payload: Any
) -> None:
    (run,) = ids(1)
    handler.on_chat_model_start(
        {"id": ["x", "OddModel"], "kwargs": {"model": "gpt-4o-mini"}},
        [["not a message"]],
        run_id=run,
        metadata={"ls_provider": 12, "langgraph_step": "one", "user_id": ["a"]},
        tags=[1, None, "ok"],
        invocation_params="not a dict",
    )
    handler.on_llm_new_token(["block"], run_id=run, chunk="not a chunk")
    handler.on_llm_end(payload, run_id=run)
    span = exporter.span("OddModel")
    assert span.ended and span.kind is SpanKind.LLM
    assert span.model_name == "gpt-4o-mini"  # from serialized kwargs
    assert span.attributes[attr.TAGS] == ("ok",)
    assert span.attributes[attr.USER_ID] == "['a']"
    if isinstance(payload, LLMResult) and payload.llm_output and "usage" in payload.llm_output:
        assert (span.input_tokens, span.output_tokens) == (3, 4)
    assert testing.failure_counts() == {}


def test_error_that_is_not_an_exception(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    (run,) = ids(1)
    handler.on_chain_start({"name": "odd"}, {}, run_id=run)
    handler.on_chain_error("a string, not an exception", run_id=run)
    assert exporter.span("odd").status is SpanStatus.ERROR


def test_duplicate_start_keeps_the_first_and_ends_once(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    (run,) = ids(1)
    handler.on_chain_start({"name": "first"}, {}, run_id=run)
    handler.on_chain_start({"name": "second"}, {}, run_id=run)
    handler.on_chain_end({}, run_id=run)
    handler.on_chain_end({}, run_id=run)
    assert [s.name for s in exporter.trace.spans] == ["first"]


def test_child_ending_after_its_parent_keeps_its_data(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    parent, child = ids(2)
    handler.on_chain_start({"name": "parent"}, {}, run_id=parent)
    handler.on_chat_model_start({"name": "model"}, [[]], run_id=child, parent_run_id=parent)
    handler.on_chain_end({}, run_id=parent)
    assert exporter.traces == []  # the trace waits for its last span
    message = AIMessage(
        "late", usage_metadata={"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=child)
    trace = exporter.trace
    assert trace.usage_totals()["input_tokens"] == 4
    assert exporter.span("parent").status is SpanStatus.CANCELLED  # it did not wait for its child


def test_unknown_parent_starts_a_root(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    run, ghost = ids(2)
    handler.on_tool_start({"name": "lonely"}, "in", run_id=run, parent_run_id=ghost)
    handler.on_tool_end("out", run_id=run)
    assert exporter.trace.root_span is not None and exporter.trace.root_span.name == "lonely"


# -- random event sequences ----------------------------------------------------------------

RUN_POOL = [uuid.UUID(int=i) for i in range(1, 6)]
ODD = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3
    ),
)
STARTS = [
    "on_chain_start",
    "on_chat_model_start",
    "on_llm_start",
    "on_tool_start",
    "on_retriever_start",
]
ENDS = [
    "on_chain_end",
    "on_llm_end",
    "on_tool_end",
    "on_retriever_end",
    "on_llm_new_token",
    "on_retry",
]
ERRORS = ["on_chain_error", "on_llm_error", "on_tool_error", "on_retriever_error"]
EVENT = st.tuples(
    st.sampled_from(STARTS + ENDS + ERRORS + ["on_custom_event", "on_agent_action", "on_text"]),
    st.sampled_from([None, *RUN_POOL, "str-id"]),
    st.sampled_from([None, *RUN_POOL]),
    ODD,
    ODD,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(EVENT, max_size=25))
def test_random_event_sequences_never_raise(events: list[tuple[Any, ...]]) -> None:
    tracer, _ = traced(pricing=catalog(), capture_content=True)
    handler = AgentOSCallbackHandler(tracer=tracer)
    for name, run_id, parent_run_id, first, second in events:
        method = getattr(handler, name)
        if name in ERRORS:
            method(ValueError(str(first)), run_id=run_id, parent_run_id=parent_run_id)
        elif name in STARTS:
            method(
                first,
                second,
                run_id=run_id,
                parent_run_id=parent_run_id,
                metadata=first,
                tags=second,
            )
        else:
            method(first, run_id=run_id, parent_run_id=parent_run_id)
    handler.sweep(max_age_s=0)
    assert handler.open_run_count == 0
    assert tracer.active_trace_count == 0
    assert testing.failure_counts() == {}


# -- state is freed -------------------------------------------------------------------------


def test_sweep_ends_runs_never_ended_as_timeout(tracer: Tracer, exporter: InMemoryExporter) -> None:
    handler = AgentOSCallbackHandler(tracer=tracer, stale_run_timeout_s=3600)
    root, child = ids(2)
    handler.on_chain_start({"name": "stuck"}, {}, run_id=root)
    handler.on_chain_start({"name": "stuck_child"}, {}, run_id=child, parent_run_id=root)
    assert handler.sweep() == 0  # not stale yet
    assert handler.sweep(max_age_s=0) == 2
    assert handler.open_run_count == 0
    statuses = {s.name: s.status for s in exporter.trace.spans}
    assert statuses == {"stuck": SpanStatus.TIMEOUT, "stuck_child": SpanStatus.TIMEOUT}
    assert exporter.span("stuck").attributes["agentos.swept"] is True
    handler.on_chain_end({}, run_id=child)  # a late end changes nothing
    assert exporter.span("stuck_child").status is SpanStatus.TIMEOUT


def test_stale_runs_are_swept_when_new_roots_start(
    tracer: Tracer, exporter: InMemoryExporter
) -> None:
    handler = AgentOSCallbackHandler(tracer=tracer, stale_run_timeout_s=1e-9, sweep_interval_s=1e-9)
    stuck, fresh = ids(2)
    handler.on_chain_start({"name": "stuck"}, {}, run_id=stuck)
    handler.on_chain_start({"name": "fresh"}, {}, run_id=fresh)  # a new root: sweeps first
    assert handler.open_run_count == 1
    assert exporter.span("stuck").status is SpanStatus.TIMEOUT


def test_no_state_left_after_many_runs(
    tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    chain = PROMPT | FakeChatModel() | StrOutputParser()
    config = {"callbacks": [handler]}
    for _ in range(300):
        chain.invoke({"q": "warm"}, config=config)
    exporter.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(1500):
            chain.invoke({"q": "many"}, config=config)
        exporter.clear()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert handler.open_run_count == 0
    assert tracer.active_trace_count == 0
    ours = [
        d
        for d in after.compare_to(before, "filename")
        if "agentos_obs" in str(d.traceback) and d.size_diff > 0
    ]
    grown = sum(d.size_diff for d in ours)
    # Freed per run: what stays is caches bounded by size (params JSON, price plans).
    assert grown < 64 * 1024, ours[:5]
