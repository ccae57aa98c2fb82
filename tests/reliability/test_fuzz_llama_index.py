"""Property-based fuzzing of the LlamaIndex span and event handlers.

Hypothesis draws a tree of LlamaIndex spans (query engines, retrievers, LLM calls with
their start/end events carrying usage, embeddings, tools; some streamed, some failing),
turns it into the dispatcher calls LlamaIndex makes (``span_enter`` / ``span_exit`` /
``span_drop`` and ``handle(event)``), then corrupts it: calls dropped, duplicated, swapped,
span ids and parent ids replaced by unknown ones, instances, results and event payloads
replaced by malformed or hostile objects (events built with ``model_construct``, so no
validation protects the handler).

Same properties as the LangChain fuzzing: nothing raises into the caller, nothing is left
once every span is exited and streams are swept, every exported trace is whole and no span
is recorded twice; wrong-shaped (non-hostile) payloads trip no internal guard.
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

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
)
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent

from agentos_obs import testing
from agentos_obs.integrations.llama_index import AgentOSSpanHandler
from agentos_obs.testing import InMemoryExporter
from agentos_obs.tracing import Tracer
from conftest import traced
from li_fakes import UsageLLM, make_tool, openai_raw

from .conftest import Hostile, UnprintableError, assert_whole_trees

KINDS = ("query", "retrieve", "llm", "embed", "tool")
NAMES = {
    "query": "RetrieverQueryEngine.query",
    "retrieve": "VectorIndexRetriever.retrieve",
    "llm": "UsageLLM.chat",
    "embed": "MockEmbedding.get_query_embedding",
    "tool": "FunctionTool.call",
}


def _instances() -> dict[str, Any]:
    from llama_index.core.embeddings import MockEmbedding

    return {
        "query": None,
        "retrieve": None,
        "llm": UsageLLM(),
        "embed": MockEmbedding(embed_dim=4),
        "tool": make_tool(),
    }


INSTANCES = _instances()
ARGS = SimpleNamespace(arguments={"query": "capital of France?"})


def _chat_response() -> ChatResponse:
    return ChatResponse(
        message=ChatMessage(role="assistant", content="Paris"), raw=openai_raw("gpt-4o-mini")
    )


def _stream() -> Any:
    def gen() -> Any:
        yield _chat_response()

    return gen()


WRONG_SHAPES: list[Any] = [
    None,
    UnprintableError(),
    0,
    -3,
    math.inf,
    "",
    "text",
    [],
    {},
    {"usage": {"prompt_tokens": "many", "completion_tokens": -1}},
    ChatResponse(message=ChatMessage(role="assistant", content=None), raw=None),
    ChatResponse(
        message=ChatMessage(role="assistant", content="x"),
        raw={"usage": {"prompt_tokens": -5, "completion_tokens": 2**70}, "model": 7},
    ),
    CompletionResponse(text="x", raw={"usage": [1, 2], "model": None}),
    CompletionResponse.model_construct(text=None, raw="not a mapping"),
    SimpleNamespace(raw=SimpleNamespace(usage=SimpleNamespace(prompt_tokens=None))),
    {"api_key": "sk-should-never-matter-0123456789"},
]
HOSTILE: list[Any] = [Hostile(), [Hostile()], {"raw": Hostile()}]


@dataclass
class Node:
    li_id: str
    parent: str | None
    kind: str
    fails: bool
    streams: bool
    children: list[Node] = field(default_factory=list)


@st.composite
def span_trees(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(min_value=1, max_value=12))
    base = draw(st.integers(1, 2**64))
    nodes: list[Node] = []
    for i in range(count):
        parent_index = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        kind = draw(st.sampled_from(KINDS))
        parent = nodes[parent_index] if parent_index is not None else None
        node = Node(
            li_id=f"{NAMES[kind]}-{uuid.UUID(int=base + i)}",
            parent=parent.li_id if parent is not None else None,
            kind=kind,
            fails=draw(st.booleans()),
            streams=kind == "llm" and draw(st.booleans()),
        )
        if parent is not None:
            parent.children.append(node)
        nodes.append(node)
    return [n for n in nodes if n.parent is None]


Call = tuple[str, dict[str, Any]]


def script(roots: list[Node]) -> list[Call]:
    calls: list[Call] = []

    def visit(node: Node) -> None:
        calls.append(
            (
                "span_enter",
                {
                    "id_": node.li_id,
                    "instance": INSTANCES[node.kind],
                    "parent_id": node.parent,
                    "tags": {"user_id": "u1"},
                },
            )
        )
        if node.kind == "llm":
            calls.append(("event", {"cls": LLMChatStartEvent, "span_id": node.li_id}))
        for child in node.children:
            visit(child)
        if node.fails:
            calls.append(("event", {"cls": ExceptionEvent, "span_id": node.li_id}))
            calls.append(("span_drop", {"id_": node.li_id, "err": RuntimeError("boom")}))
            return
        if node.kind == "llm":
            if node.streams:
                calls.append(("span_exit", {"id_": node.li_id, "result": _stream()}))
                calls.append(("event", {"cls": LLMChatInProgressEvent, "span_id": node.li_id}))
                calls.append(("event", {"cls": LLMChatEndEvent, "span_id": node.li_id}))
                return
            calls.append(("event", {"cls": LLMChatEndEvent, "span_id": node.li_id}))
            calls.append(("span_exit", {"id_": node.li_id, "result": _chat_response()}))
            return
        if node.kind == "embed":
            calls.append(("event", {"cls": EmbeddingEndEvent, "span_id": node.li_id}))
        if node.kind == "retrieve":
            calls.append(("event", {"cls": RetrievalEndEvent, "span_id": node.li_id}))
        calls.append(("span_exit", {"id_": node.li_id, "result": "done"}))

    for root in roots:
        visit(root)
    return calls


def _event(cls: type[Any], span_id: Any, payload: Any = None) -> Any:
    """An event built without validation (malformed payloads get through as they are)."""
    fields: dict[str, Any] = {"span_id": span_id}
    good: dict[type, dict[str, Any]] = {
        LLMChatStartEvent: {
            "messages": [ChatMessage(role="user", content="hi")],
            "additional_kwargs": {},
            "model_dict": {"model": "gpt-4o-mini"},
        },
        LLMChatEndEvent: {"messages": [], "response": _chat_response()},
        LLMChatInProgressEvent: {"messages": [], "response": _chat_response()},
        LLMCompletionEndEvent: {"prompt": "hi", "response": CompletionResponse(text="x")},
        EmbeddingEndEvent: {"chunks": ["a"], "embeddings": [[0.0, 1.0]]},
        RetrievalEndEvent: {"str_or_query_bundle": "q", "nodes": []},
        ExceptionEvent: {"exception": RuntimeError("boom")},
    }
    fields.update(good.get(cls, {}))
    if payload is not None:
        for key in list(fields):
            if key != "span_id":
                fields[key] = payload
    return cls.model_construct(**fields)


MUTATIONS = ("drop", "duplicate", "swap", "unknown_id", "unknown_parent", "payload")


@st.composite
def corrupted(draw: st.DrawFn, hostile: bool) -> list[Call]:
    payloads = WRONG_SHAPES + HOSTILE if hostile else WRONG_SHAPES
    calls = script(draw(span_trees()))
    for _ in range(draw(st.integers(0, 8))):
        if not calls:
            break
        i = draw(st.integers(0, len(calls) - 1))
        mutation = draw(st.sampled_from(MUTATIONS))
        name, kwargs = calls[i]
        id_key = "span_id" if name == "event" else "id_"
        if mutation == "drop":
            del calls[i]
        elif mutation == "duplicate":
            calls.insert(i, (name, dict(kwargs)))
        elif mutation == "swap" and i + 1 < len(calls):
            calls[i], calls[i + 1] = calls[i + 1], calls[i]
        elif mutation == "unknown_id":
            calls[i] = (name, {**kwargs, id_key: f"Ghost.call-{uuid.uuid4()}"})
        elif mutation == "unknown_parent" and name == "span_enter":
            calls[i] = (name, {**kwargs, "parent_id": f"Ghost.call-{uuid.uuid4()}"})
        elif mutation == "payload":
            payload = payloads[draw(st.integers(0, len(payloads) - 1))]
            key = {"span_enter": "instance", "span_exit": "result", "span_drop": "err"}.get(
                name, "payload"
            )
            calls[i] = (name, {**kwargs, key: payload})
    return calls


def _send(handler: AgentOSSpanHandler, name: str, kwargs: dict[str, Any]) -> None:
    if name == "span_enter":
        handler.span_enter(
            kwargs["id_"], ARGS, instance=kwargs["instance"], parent_id=kwargs["parent_id"],
            tags=kwargs["tags"],
        )  # fmt: skip
    elif name == "span_exit":
        handler.span_exit(kwargs["id_"], ARGS, result=kwargs["result"])
    elif name == "span_drop":
        err = kwargs["err"]
        handler.span_drop(kwargs["id_"], ARGS, err=err)
    else:
        event = _event(kwargs["cls"], kwargs["span_id"], kwargs.get("payload"))
        handler.event_handler.handle(event)


def _finish(handler: AgentOSSpanHandler, calls: list[Call]) -> None:
    """Exit every span the calls mentioned (LlamaIndex exits each span it entered), then
    sweep streams nobody will consume."""
    for name, kwargs in calls:
        if name == "span_enter":
            handler.span_exit(kwargs["id_"], ARGS, result=None)
    handler.sweep(max_age_s=0)


def _check(tracer: Tracer, exporter: InMemoryExporter, handler: AgentOSSpanHandler) -> None:
    assert handler.open_span_count == 0
    assert handler.parked_stream_count == 0
    assert tracer.active_trace_count == 0, "a trace was left open after every span ended"
    assert_whole_trees(exporter.traces)


SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(calls=corrupted(hostile=False), capture=st.booleans())
def test_corrupted_dispatch_trips_no_guard(calls: list[Call], capture: bool) -> None:
    tracer, exporter = traced(capture_content=capture)
    handler = AgentOSSpanHandler(tracer=tracer)
    for name, kwargs in calls:
        _send(handler, name, kwargs)
    _finish(handler, calls)
    _check(tracer, exporter, handler)
    assert testing.failure_counts() == {}


@SETTINGS
@given(calls=corrupted(hostile=True), capture=st.booleans())
def test_hostile_payloads_never_reach_the_caller(
    lenient: None, calls: list[Call], capture: bool
) -> None:
    tracer, exporter = traced(capture_content=capture)
    handler = AgentOSSpanHandler(tracer=tracer)
    for name, kwargs in calls:
        _send(handler, name, kwargs)
    _finish(handler, calls)
    _check(tracer, exporter, handler)


@settings(max_examples=60, deadline=None)
@given(roots=span_trees())
def test_uncorrupted_dispatch_gives_exactly_the_drawn_trees(roots: list[Node]) -> None:
    tracer, exporter = traced()
    handler = AgentOSSpanHandler(tracer=tracer)
    calls = script(roots)
    for name, kwargs in calls:
        _send(handler, name, kwargs)
    _finish(handler, calls)
    _check(tracer, exporter, handler)
    assert len(exporter.traces) == len(roots)
    spans = {s.attributes["agentos.run_id"]: s for t in exporter.traces for s in t.spans}
    enters = {kw["id_"]: kw["parent_id"] for name, kw in calls if name == "span_enter"}
    assert len(spans) == len([s.span_id for s in exporter.spans]) == len(enters)
    for li_id, parent_id in enters.items():
        span = spans[li_id]
        assert (span.parent is None) if parent_id is None else (span.parent is spans[parent_id])
