"""agentos_obs.testing: the collecting exporter, flat prices, the guard's counters and the
offline fake models, checked against real tracers and real framework runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.tools import tool

import agentos_obs.testing as kit
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.pricing import Usage
from agentos_obs.testing import (
    FakeChatModel,
    FakeOpenAI,
    FakeRetriever,
    FlatPricing,
    InMemoryExporter,
    estimate_tokens,
)
from agentos_obs.tracing import SpanKind, Tracer
from conftest import traced


# -- the package face ------------------------------------------------------------------------
def test_import_loads_no_framework() -> None:
    code = (
        "import sys, agentos_obs.testing as t; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'opentelemetry', 'starlette', 'rich')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert kit.__all__ == sorted(kit.__all__)
    for name in kit.__all__:
        assert getattr(kit, name) is not None
    with pytest.raises(AttributeError):
        kit.NoSuchThing  # noqa: B018


# -- InMemoryExporter ------------------------------------------------------------------------
def test_exporter_collects_traces_and_spans_in_order(tracer: Tracer) -> None:
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    for name in ("first", "second"):
        with tracer.start_span(name, SpanKind.AGENT):
            with tracer.start_span("step", SpanKind.TOOL):
                pass
    assert [t.root_span.name for t in exporter.traces if t.root_span] == ["first", "second"]
    assert [s.name for s in exporter.spans] == ["first", "step", "second", "step"]
    assert [s.name for s in exporter.find_spans(kind=SpanKind.TOOL)] == ["step", "step"]
    assert exporter.find_spans("first", SpanKind.TOOL) == []
    assert exporter.span("second").kind is SpanKind.AGENT
    assert len(exporter) == 2


def test_exporter_lists_are_snapshots_and_clear_forgets(tracer: Tracer) -> None:
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    with tracer.start_span("a"):
        pass
    seen = exporter.traces
    with tracer.start_span("b"):
        pass
    assert len(seen) == 1 and len(exporter.traces) == 2
    seen.clear()  # the caller's copy only
    assert len(exporter.traces) == 2
    exporter.clear()
    assert exporter.traces == [] and exporter.spans == []


def test_exactly_one_lookups_fail_with_what_was_found(tracer: Tracer) -> None:
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    with pytest.raises(AssertionError, match="expected one trace, got 0"):
        _ = exporter.trace
    for _ in range(2):
        with tracer.start_span("same"):
            pass
    with pytest.raises(AssertionError, match="got 2"):
        _ = exporter.trace
    with pytest.raises(AssertionError, match=r"expected one span 'same', got 2"):
        exporter.span("same")
    with pytest.raises(AssertionError, match=r"spans: \['same'\]"):
        exporter.span("other")


def test_exporter_is_safe_under_concurrent_export(tracer: Tracer) -> None:
    exporter = InMemoryExporter()
    tracer.add_exporter(exporter)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(250):
            with tracer.start_span("t"):
                pass
            _ = exporter.spans  # reads while others append

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(exporter.traces) == 2000
    assert len({t.trace_id for t in exporter.traces}) == 2000


# -- FlatPricing ---------------------------------------------------------------------------
def test_flat_pricing_prices_every_model_but_the_unpriced() -> None:
    pricing = FlatPricing(1.0, 2.0, unpriced=["Mystery"])
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=400_000)
    assert pricing.cost("any-model", usage) == pytest.approx(1.0 + 1.0)
    assert pricing.cost("mystery", usage) is None
    assert pricing.cost("any-model", {"prompt_tokens": 10**6, "completion_tokens": 0}) == 1.0
    price = pricing.resolve("gpt-x", "openai")
    assert price is not None and (price.input_mtok, price.output_mtok) == (1.0, 2.0)
    assert pricing.unpriced_models() == {"mystery"}


def test_flat_pricing_on_a_tracer_gives_exact_costs() -> None:
    tracer, exporter = traced(pricing=FlatPricing(1000.0, 2000.0, unpriced=["mystery"]))
    with tracer.start_span("call", SpanKind.LLM):
        tracer.record_llm_call("whatever-model", 1000, 500)
    with tracer.start_span("call", SpanKind.LLM):
        tracer.record_llm_call("mystery", 1000, 500)
    priced, unpriced = (t.root_span for t in exporter.traces)
    assert priced is not None and priced.cost_usd == pytest.approx(1.0 + 1.0)
    assert unpriced is not None and unpriced.cost_usd is None


# -- the guard's counters ------------------------------------------------------------------
def test_counters_strict_mode_and_reset(tracer: Tracer) -> None:
    def broken(trace: object) -> None:
        raise RuntimeError("exporter bug")

    tracer.add_exporter(broken, sync=True)
    assert kit.is_strict()  # the suite's default
    with pytest.raises(RuntimeError, match="exporter bug"):
        with tracer.start_span("strict"):
            pass
    with kit.strict_mode(False):
        assert not kit.is_strict()
        with tracer.start_span("lenient"):
            pass  # swallowed and counted
    assert kit.is_strict()
    counts = kit.failure_counts()
    assert sum(counts.values()) == 2 and all("broken" in key for key in counts)
    kit.reset_counts()
    assert kit.failure_counts() == {} and kit.dropped_counts() == {}


def test_set_strict_is_what_strict_mode_restores() -> None:
    kit.set_strict(False)
    try:
        with kit.strict_mode():
            assert kit.is_strict()
        assert not kit.is_strict()
    finally:
        kit.set_strict(True)


# -- FakeChatModel -------------------------------------------------------------------------
def test_chat_model_reports_usage_like_a_provider() -> None:
    model = FakeChatModel(
        replies=["one", "two"],
        model_name="gpt-4o-mini",
        resolved_model="gpt-4o-mini-2024-07-18",
        input_tokens=100,
        output_tokens=20,
        cache_read_tokens=30,
        reasoning_tokens=5,
    )
    first, second, third = (model.invoke("hi") for _ in range(3))
    assert [first.content, second.content, third.content] == ["one", "two", "one"]
    assert first.usage_metadata == {
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "input_token_details": {"cache_read": 30, "cache_creation": 0},
        "output_token_details": {"reasoning": 5},
    }
    assert first.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"


def test_chat_model_streams_text_then_a_last_chunk_with_usage() -> None:
    chunks = list(FakeChatModel(replies=["a b c"]).stream("hi"))
    assert [c.content for c in chunks] == ["a", " b", " c", ""]
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata["total_tokens"] == 17
    assert chunks[-1].chunk_position == "last"


class InFlight(BaseCallbackHandler):
    """The most model calls running at once."""

    run_inline = True  # on the event loop's thread: no lock needed

    def __init__(self) -> None:
        self.now = self.most = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.now -= 1


async def test_chat_model_async_paths_await_their_latency() -> None:
    model = FakeChatModel(latency_s=0.05)
    in_flight = InFlight()
    config: Any = {"callbacks": [in_flight]}
    replies = await asyncio.gather(*(model.ainvoke("hi", config=config) for _ in range(20)))
    assert all(r.content == "hello world" for r in replies)
    assert in_flight.most == 20  # each call awaited its latency: all of them overlapped
    chunks = [c async for c in model.astream("hi")]
    assert "".join(str(c.content) for c in chunks) == "hello world"


def test_chat_model_estimates_tokens_when_not_fixed() -> None:
    text = "x" * 40
    reply = FakeChatModel(replies=["y" * 8], input_tokens=None, output_tokens=None).invoke(text)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == estimate_tokens(text) == 10
    assert reply.usage_metadata["output_tokens"] == 2


class LLMEnds(BaseCallbackHandler):
    """What LangChain hands callback handlers at the end of each model call."""

    def __init__(self) -> None:
        self.results: list[LLMResult] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.results.append(response)


def test_chat_model_usage_in_llm_output_only() -> None:
    ends = LLMEnds()
    model = FakeChatModel(usage_in="llm_output", input_tokens=30, output_tokens=7)
    reply = model.invoke("hi", config={"callbacks": [ends]})
    assert reply.usage_metadata is None
    (result,) = ends.results
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["prompt_tokens"] == 30
    assert result.llm_output["model_name"] == "gpt-4o-mini"


@tool
def lookup(city: str) -> str:
    """Look a city up."""
    return f"{city}: sunny"


@pytest.mark.parametrize("stream", [False, True])
def test_chat_model_calls_planned_tools_then_answers(stream: bool) -> None:
    model = FakeChatModel(
        replies=["Found:"],
        tool_plan={"weather?": [("lookup", {"city": "Paris"}), ("lookup", {"city": "Rome"})]},
    ).bind_tools([lookup])
    messages: list = [HumanMessage("weather?")]

    def ask() -> AIMessage:
        if not stream:
            return model.invoke(messages)  # type: ignore[return-value]
        chunks = list(model.stream(messages))
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        return merged  # type: ignore[return-value]

    first = ask()
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("lookup", {"city": "Paris"}, "call_0"),
        ("lookup", {"city": "Rome"}, "call_1"),
    ]
    assert first.response_metadata["finish_reason"] == "tool_calls"
    messages.append(first)
    messages.extend(lookup.invoke(call) for call in first.tool_calls)
    answer = ask()
    assert answer.tool_calls == []
    assert answer.content == "Found: Paris: sunny Rome: sunny"


def test_chat_model_rejects_a_plan_for_an_unbound_tool() -> None:
    model = FakeChatModel(tool_calls=[("missing", {})]).bind_tools([lookup])
    with pytest.raises(ValueError, match="unbound tools"):
        model.invoke("hi")


def test_chat_model_without_tools_bound_ignores_the_plan() -> None:
    reply = FakeChatModel(tool_calls=[("lookup", {"city": "Paris"})]).invoke("hi")
    assert reply.tool_calls == [] and reply.content == "hello world"


def test_cached_prefix_is_read_from_the_second_call_on() -> None:
    model = FakeChatModel(cached_prefix_tokens=8, input_tokens=50)
    first = model.invoke([HumanMessage("a")])
    later = model.invoke([HumanMessage("a"), AIMessage("b"), ToolMessage("c", tool_call_id="1")])
    assert first.usage_metadata is not None and "input_token_details" not in first.usage_metadata
    assert later.usage_metadata is not None
    assert later.usage_metadata["input_token_details"]["cache_read"] == 8


class Outage(RuntimeError):
    pass


def test_chat_model_errors_on_call_and_mid_stream() -> None:
    with pytest.raises(Outage):
        FakeChatModel(error=Outage("down")).invoke("hi")
    model = FakeChatModel(replies=["a b c"], error=Outage("reset"), fail_after_chunks=2)
    got: list[str] = []
    with pytest.raises(Outage):
        for chunk in model.stream("hi"):
            got.append(str(chunk.content))
    assert got == ["a", " b"]


def test_chat_model_through_the_handler_records_usage_and_no_secret() -> None:
    tracer, exporter = traced(pricing=FlatPricing(1.0, 2.0))
    model = FakeChatModel(api_key="sk-kit-0123456789abcdefghijklmnopq")
    model.invoke("hi", config={"callbacks": [AgentOSCallbackHandler(tracer=tracer)]})
    span = exporter.span("FakeChatModel")
    assert (span.kind, span.input_tokens, span.output_tokens) == (SpanKind.LLM, 12, 5)
    assert span.cost_usd == pytest.approx((12 * 1.0 + 5 * 2.0) / 1e6)
    assert "sk-kit-0123456789" not in json.dumps(exporter.trace.to_dict(), default=str)


# -- FakeRetriever -------------------------------------------------------------------------
def test_retriever_ranks_by_shared_words_and_ignores_case_punctuation_short_words() -> None:
    docs = [
        Document("Berlin is the capital of Germany."),
        Document("Paris is the capital of France."),
        Document("Bananas are yellow."),
    ]
    retriever = FakeRetriever(documents=docs, k=2)
    found = retriever.invoke("What is the CAPITAL of france?")
    assert [d.page_content for d in found] == [docs[1].page_content, docs[0].page_content]
    assert retriever.invoke("is of a") == []  # words under three letters match nothing
    assert asyncio.run(retriever.ainvoke("bananas!")) == [docs[2]]


# -- FakeOpenAI ----------------------------------------------------------------------------
def test_llama_index_llm_reports_openai_usage_in_raw() -> None:
    llm = FakeOpenAI(model="gpt-4o", reply="Paris.")
    response = llm.complete("capital of France?")
    assert response.text == "Paris."
    assert response.raw["model"] == "gpt-4o"
    assert response.raw["usage"]["prompt_tokens"] == 120
    assert response.raw["usage"]["prompt_tokens_details"] == {"cached_tokens": 20}
    assert llm.calls == 1
    assert FakeOpenAI(answer=lambda prompt: prompt.upper()).complete("abc").text == "ABC"


def test_llama_index_llm_streams_with_usage_on_the_last_chunk_only() -> None:
    llm = FakeOpenAI(reply="one two three four", input_tokens=None, output_tokens=None)
    chunks = list(llm.stream_complete("a prompt"))
    assert len(chunks) == 4
    assert all(c.raw == {"model": "gpt-4o-mini"} for c in chunks[:-1])
    assert chunks[-1].raw["usage"]["completion_tokens"] == estimate_tokens("one two three four")
    assert chunks[-1].text.strip() == "one two three four"
    assert llm.calls == 1


def test_llama_index_llm_fails_on_call_or_mid_stream() -> None:
    with pytest.raises(Outage):
        FakeOpenAI(error=Outage("down")).complete("hi")
    with pytest.raises(Outage):
        FakeOpenAI(error=Outage("down")).stream_complete("hi")
    stream = FakeOpenAI(error=Outage("reset"), fail_after_chunks=1).stream_complete("hi")
    assert next(stream).delta
    with pytest.raises(Outage):
        next(stream)
