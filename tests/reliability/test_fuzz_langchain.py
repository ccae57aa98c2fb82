"""Property-based fuzzing of the LangChain handler with corrupted callback sequences.

Hypothesis draws a well-formed run tree (chains, chat models, completion models, tools,
retrievers; streaming tokens; errors), turns it into the callback sequence LangChain would
send, then corrupts it: events dropped, duplicated, swapped with their neighbour, run ids
or parent ids replaced by unknown ones, payloads replaced by malformed or hostile objects.

Whatever the sequence, in production (lenient) mode:
* no exception reaches the caller;
* once every run is ended (and never-ended ones swept), nothing is left: no open run in
  the handler, no open trace in the tracer;
* every exported trace is a set of whole trees: each trace once, each span once, ended,
  parent in the same trace, no negative usage.
In strict mode (the suite's default) payloads of the wrong type but not hostile must not
even trip an internal guard.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

import agentos_obs.attributes as attr
from agentos_obs import testing
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import InMemoryExporter
from agentos_obs.tracing import Tracer
from conftest import traced

from .conftest import Hostile, UnprintableError, assert_whole_trees

KINDS = ("chain", "chat", "llm", "tool", "retriever")
START = {
    "chain": "on_chain_start",
    "chat": "on_chat_model_start",
    "llm": "on_llm_start",
    "tool": "on_tool_start",
    "retriever": "on_retriever_start",
}
END = {
    "chain": "on_chain_end",
    "chat": "on_llm_end",
    "llm": "on_llm_end",
    "tool": "on_tool_end",
    "retriever": "on_retriever_end",
}
ERROR = {
    "chain": "on_chain_error",
    "chat": "on_llm_error",
    "llm": "on_llm_error",
    "tool": "on_tool_error",
    "retriever": "on_retriever_error",
}


def _good_llm_result() -> LLMResult:
    message = AIMessage(
        content="ok",
        usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
        response_metadata={"model_name": "gpt-4o-mini"},
    )
    return LLMResult(generations=[[ChatGeneration(message=message)]])


def _token_chunk() -> ChatGenerationChunk:
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        )
    )


# Payloads of the wrong shape: what a buggy provider integration or a future LangChain
# might send. None of them may trip an internal guard (checked in strict mode).
WRONG_SHAPES: list[Any] = [
    None,
    UnprintableError(),
    0,
    -1,
    2**70,
    math.nan,
    "",
    "text",
    b"bytes",
    [],
    [[]],
    {},
    {"generations": "nope"},
    {"token_usage": {"prompt_tokens": "12", "completion_tokens": -5}},
    SimpleNamespace(generations=[[SimpleNamespace(message=None, text=None)]], llm_output=None),
    SimpleNamespace(
        generations=[
            [
                SimpleNamespace(
                    message=SimpleNamespace(
                        usage_metadata={"input_tokens": "lots", "output_tokens": None},
                        response_metadata="not a dict",
                        content=None,
                    ),
                    text=3,
                    generation_info=[],
                )
            ]
        ],
        llm_output={"token_usage": {"prompt_tokens": -3, "completion_tokens": math.inf}},
    ),
    SimpleNamespace(
        generations=[
            [SimpleNamespace(message=SimpleNamespace(usage_metadata={"input_tokens": -7}))]
        ],
        llm_output={"usage": [1, 2, 3], "model_name": 42},
    ),
    LLMResult(generations=[], llm_output={"token_usage": None}),
    [HumanMessage(content="hi")],
    {"api_key": "sk-should-never-matter-0123456789", "nested": {"deep": [1, {"x": None}]}},
]
# Objects that raise on any use: only the guard can stand between them and the app.
HOSTILE: list[Any] = [Hostile(), {"metadata": Hostile()}, [Hostile()]]


@dataclass
class Run:
    run_id: uuid.UUID
    parent: uuid.UUID | None
    kind: str
    fails: bool
    streams: bool
    children: list[Run] = field(default_factory=list)


@st.composite
def run_trees(draw: st.DrawFn) -> list[Run]:
    """A forest of runs: each new run's parent is an earlier run or none (a new root)."""
    count = draw(st.integers(min_value=1, max_value=14))
    base = draw(st.integers(1, 2**64))  # run ids base + i: distinct within a draw
    runs: list[Run] = []
    for i in range(count):
        parent_index = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        kind = draw(st.sampled_from(KINDS))
        parent = runs[parent_index] if parent_index is not None else None
        # Models and tools rarely have children; allowing it is part of the fuzzing.
        run = Run(
            run_id=uuid.UUID(int=base + i),
            parent=parent.run_id if parent is not None else None,
            kind=kind,
            fails=draw(st.booleans()),
            streams=kind == "chat" and draw(st.booleans()),
        )
        if parent is not None:
            parent.children.append(run)
        runs.append(run)
    return [r for r in runs if r.parent is None]


Event = tuple[str, dict[str, Any]]


def script(roots: list[Run]) -> list[Event]:
    """The callback sequence LangChain sends for these runs (depth first)."""
    events: list[Event] = []

    def visit(run: Run) -> None:
        ids = {"run_id": run.run_id, "parent_run_id": run.parent}
        start: dict[str, Any] = {
            **ids,
            "serialized": {"name": f"{run.kind}-{run.run_id.int % 1000}"},
            "tags": ["fuzz"],
            "metadata": {"ls_provider": "openai", "ls_model_name": "gpt-4o-mini"},
            "invocation_params": {"model": "gpt-4o-mini", "api_key": "sk-fuzz-0123456789abcdef"},
        }
        if run.kind == "chat":
            start["messages"] = [[HumanMessage(content="hello")]]
        elif run.kind == "llm":
            start["prompts"] = ["hello"]
        elif run.kind == "tool":
            start["input_str"] = "{'city': 'Paris'}"
        elif run.kind == "retriever":
            start["query"] = "capital of France"
        else:
            start["inputs"] = {"question": "hi"}
        events.append((START[run.kind], start))
        if run.streams:
            events.append(("on_llm_new_token", {**ids, "token": "", "chunk": _token_chunk()}))
        for child in run.children:
            visit(child)
        if run.fails:
            events.append((ERROR[run.kind], {**ids, "error": RuntimeError("boom")}))
        elif run.kind in ("chat", "llm"):
            events.append((END[run.kind], {**ids, "response": _good_llm_result()}))
        else:
            events.append((END[run.kind], {**ids, "outputs": {"answer": "ok"}}))

    for root in roots:
        visit(root)
    return events


# One corruption applied at one position of the script.
MUTATIONS = ("drop", "duplicate", "swap", "unknown_run", "unknown_parent", "payload")


@st.composite
def corrupted(draw: st.DrawFn, hostile: bool) -> list[Event]:
    # Payloads picked by index: hypothesis hashes what it samples, and hostile objects raise.
    payloads = WRONG_SHAPES + HOSTILE if hostile else WRONG_SHAPES
    events = script(draw(run_trees()))
    for _ in range(draw(st.integers(0, 8))):
        if not events:
            break
        i = draw(st.integers(0, len(events) - 1))
        mutation = draw(st.sampled_from(MUTATIONS))
        name, kwargs = events[i]
        if mutation == "drop":
            del events[i]
        elif mutation == "duplicate":
            events.insert(i, (name, dict(kwargs)))
        elif mutation == "swap" and i + 1 < len(events):
            events[i], events[i + 1] = events[i + 1], events[i]
        elif mutation == "unknown_run":
            events[i] = (name, {**kwargs, "run_id": uuid.uuid4()})
        elif mutation == "unknown_parent":
            events[i] = (name, {**kwargs, "parent_run_id": uuid.uuid4()})
        elif mutation == "payload":
            keys = [k for k in kwargs if k not in ("run_id", "parent_run_id")]
            if keys:
                key = draw(st.sampled_from(keys))
                events[i] = (
                    name,
                    {**kwargs, key: payloads[draw(st.integers(0, len(payloads) - 1))]},
                )
    return events


def _send(handler: AgentOSCallbackHandler, name: str, kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    method = getattr(handler, name)
    if name.endswith("_start"):
        first = next(
            k for k in ("messages", "prompts", "input_str", "query", "inputs") if k in kwargs
        )
        method(kwargs.pop("serialized"), kwargs.pop(first), **kwargs)
    elif name.endswith("_error"):
        method(kwargs.pop("error"), **kwargs)
    elif name == "on_llm_new_token":
        method(kwargs.pop("token"), **kwargs)  # positionally, as async LangChain does
    else:
        payload_key = next(k for k in ("response", "outputs") if k in kwargs)
        method(kwargs.pop(payload_key), **kwargs)


def _finish(handler: AgentOSCallbackHandler, events: list[Event]) -> None:
    """End every run the sequence mentioned, then sweep what LangChain never ended."""
    seen = {kwargs.get("run_id") for _, kwargs in events}
    for run_id in seen:
        handler.on_chain_end({}, run_id=run_id)
    handler.sweep(max_age_s=0)


def _check(tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSCallbackHandler) -> None:
    assert handler.open_run_count == 0
    assert tracer.active_trace_count == 0, "a trace was left open after every run ended"
    assert_whole_trees(exporter.traces)


SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(events=corrupted(hostile=False), capture=st.booleans())
def test_corrupted_sequences_trip_no_guard(events: list[Event], capture: bool) -> None:
    """Strict mode: wrong-shaped payloads, missing/duplicated/reordered/unknown-id events
    are handled by the handler's own logic, without any internal failure."""
    tracer, exporter = traced(capture_content=capture)
    handler = AgentOSCallbackHandler(tracer=tracer)
    for name, kwargs in events:
        _send(handler, name, kwargs)
    _finish(handler, events)
    _check(tracer, exporter, handler)
    assert testing.failure_counts() == {}


@SETTINGS
@given(events=corrupted(hostile=True), capture=st.booleans())
def test_hostile_payloads_never_reach_the_caller(
    lenient: None, events: list[Event], capture: bool
) -> None:
    """Production mode: even payloads that raise on any use never raise into the app, and
    leave no state behind."""
    tracer, exporter = traced(capture_content=capture)
    handler = AgentOSCallbackHandler(tracer=tracer)
    for name, kwargs in events:
        _send(handler, name, kwargs)  # any exception here fails the test
    _finish(handler, events)
    _check(tracer, exporter, handler)


@settings(max_examples=60, deadline=None)
@given(roots=run_trees())
def test_uncorrupted_sequences_give_exactly_the_drawn_trees(roots: list[Run]) -> None:
    """The oracle for the fuzzing above: a clean sequence yields one trace per root, one
    span per run, parents as drawn."""
    tracer, exporter = traced()
    handler = AgentOSCallbackHandler(tracer=tracer)
    events = script(roots)
    for name, kwargs in events:
        _send(handler, name, kwargs)
    _check(tracer, exporter, handler)
    assert len(exporter.traces) == len(roots)
    spans = {s.attributes[attr.RUN_ID]: s for t in exporter.traces for s in t.spans}
    starts = {kw["run_id"]: kw["parent_run_id"] for name, kw in events if name.endswith("_start")}
    assert len(spans) == len([s.span_id for s in exporter.spans]) == len(starts)
    for run_id, parent_id in starts.items():
        span = spans[str(run_id)]
        if parent_id is None:
            assert span.parent is None
        else:
            assert span.parent is spans[str(parent_id)]
