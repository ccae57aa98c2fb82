"""Mapping of sealed span records onto GenAI / OpenInference attributes (no network).

Records come from a real Tracer (``span.record``) or are built by hand with the public
constructor, as the store's reader does."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest

from agentos_obs.exporters._semconv import (
    genai_operation,
    otel_attributes,
    otel_span_name,
    provider_names,
    to_attribute_value,
)
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    CostStatus,
    Span,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Tracer,
    TraceRecord,
)


def record(name: str, kind: SpanKind = SpanKind.CHAIN, **facts: Any) -> SpanRecord:
    """A record built by hand, as the store's reader builds them."""
    facts.setdefault("span_id", "00f067aa0ba902b7")
    facts.setdefault("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
    facts.setdefault("parent_id", None)
    facts.setdefault("status", SpanStatus.OK)
    facts.setdefault("start_time", 1_000)
    facts.setdefault("end_time", 2_000)
    return SpanRecord(name=name, kind=kind, **facts)


def call(name: str = "ChatOpenAI", **facts: Any) -> SpanRecord:
    facts.setdefault("llm_call", True)
    facts.setdefault("usage", Usage(10, 5))
    facts.setdefault("cost_usd", 0.01)
    facts.setdefault("cost_status", CostStatus.PRICED)
    return record(name, facts.pop("kind", SpanKind.LLM), **facts)


def sealed(span: Span) -> SpanRecord:
    assert span.record is not None
    return span.record


class Color(Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("text", "text"),
        (True, True),
        (3, 3),
        (2.5, 2.5),
        (2**70, str(2**70)),
        (Color.RED, "red"),
        (["a", "b"], ["a", "b"]),
        ([1, 2], [1, 2]),
        ([1, 2.5], [1.0, 2.5]),
        ([True, False], [True, False]),
        ([], None),
        ([1, "a"], '[1,"a"]'),
        ([1, True], "[1,true]"),
        ({"k": [1]}, '{"k":[1]}'),
        ((1, 2), [1, 2]),
        ({"nan": float("nan"), "big": [2**70]}, '{"nan":"NaN","big":["1180591620717411303424"]}'),
    ],
)
def test_attribute_values_are_what_opentelemetry_accepts(value: Any, expected: Any) -> None:
    assert to_attribute_value(value) == expected


def test_provider_spellings_map_to_both_vocabularies() -> None:
    assert provider_names("openai") == ("openai", "openai", "openai")
    assert provider_names("Bedrock") == ("aws.bedrock", "aws", None)
    assert provider_names("google_genai") == ("gcp.gemini", "google", "vertexai")
    assert provider_names("azure") == ("azure.ai.openai", "azure", "openai")
    assert provider_names("mistralai") == ("mistral_ai", "mistralai", "mistralai")
    assert provider_names("acme-llm") == ("acme-llm", "acme-llm", None)
    assert provider_names(None) is None and provider_names("") is None


def test_span_names_follow_genai_conventions() -> None:
    assert otel_span_name(call(model=None)) == "ChatOpenAI"  # no model known: keep the name
    assert otel_span_name(call(model="gpt-4o-2024-08-06")) == "chat gpt-4o-2024-08-06"
    requested = call(model="gpt-4o-2024-08-06", attributes={"llm.request_model": "gpt-4o"})
    assert otel_span_name(requested) == "chat gpt-4o"  # the requested model, as the spec says
    tool = record("t", SpanKind.TOOL, attributes={"tool.name": "calc"})
    assert otel_span_name(tool) == "execute_tool calc"
    assert otel_span_name(record("fallback", SpanKind.TOOL)) == "execute_tool fallback"
    # The agent is the record's (agent.name, else the agent span's name), never re-derived.
    assert otel_span_name(record("x", SpanKind.AGENT, agent="planner")) == "invoke_agent planner"
    assert otel_span_name(record("RunnableSequence")) == "RunnableSequence"
    assert otel_span_name(record("", SpanKind.MEMORY)) == "memory"


def test_the_counted_call_is_the_inference_whatever_its_kind() -> None:
    # record_usage on a CHAIN span makes it the call (innermost span carrying usage).
    chain_call = call("my_step", kind=SpanKind.CHAIN, model="m")
    assert genai_operation(chain_call) == "chat"
    assert otel_span_name(chain_call) == "chat m"
    attributes = otel_attributes(chain_call)
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["langfuse.observation.type"] == "generation"
    assert attributes["gen_ai.usage.input_tokens"] == 10
    assert attributes["agentos.llm_call"] is True
    # An integration may name the operation (a completion model): it wins.
    completion = call(model="m", attributes={"gen_ai.operation.name": "text_completion"})
    assert otel_span_name(completion) == "text_completion m"
    embedding = call("embed", kind=SpanKind.EMBEDDING, model="e")
    assert otel_span_name(embedding) == "embeddings e"
    assert otel_attributes(embedding)["openinference.span.kind"] == "EMBEDDING"


def test_plain_prompt_and_truncated_messages_fall_back_to_input_value() -> None:
    attributes = otel_attributes(
        call(
            attributes={
                "llm.input_messages": "Tell me a joke",
                "llm.output_messages": '[{"role": "ai", "content": "Why did the…',
            }
        )
    )
    assert attributes["input.value"] == "Tell me a joke"
    assert attributes["output.value"].startswith('[{"role": "ai"')
    assert "gen_ai.output.messages" not in attributes
    assert not any(key.startswith("llm.output_messages.") for key in attributes)


def test_message_content_that_is_structured_becomes_json_text() -> None:
    messages = [{"role": "human", "content": [{"type": "text", "text": "hi"}]}, "raw string"]
    attributes = otel_attributes(call(attributes={"llm.input_messages": json.dumps(messages)}))
    assert json.loads(attributes["llm.input_messages.0.message.content"]) == [
        {"type": "text", "text": "hi"}
    ]
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.input_messages.1.message.content"] == "raw string"


def test_an_llm_span_wrapping_the_call_is_not_a_second_inference() -> None:
    tracer = Tracer("t")
    with tracer.start_span("achat", SpanKind.LLM) as outer:
        with tracer.start_span("chat", SpanKind.LLM) as inner:
            tracer.record_usage(inner, model="m", input_tokens=5, output_tokens=1, cost_usd=0.1)
        tracer.record_usage(outer, model="m", input_tokens=5, output_tokens=1, cost_usd=0.1)
    wrapper, counted = sealed(outer), sealed(inner)
    assert counted.llm_call and not wrapper.llm_call
    outer_attributes = otel_attributes(wrapper)
    assert genai_operation(wrapper) is None and otel_span_name(wrapper) == "achat"
    assert outer_attributes["agentos.llm_call"] is False
    assert outer_attributes["openinference.span.kind"] == "CHAIN"
    assert outer_attributes["langfuse.observation.type"] == "span"
    # No usage on the wrapper: a backend summing per span counts the call once.
    assert not any(
        key.startswith(("gen_ai.usage.", "llm.token_count.")) for key in outer_attributes
    )
    inner_attributes = otel_attributes(counted)
    assert otel_span_name(counted) == "chat m"
    assert inner_attributes["gen_ai.usage.input_tokens"] == 5
    assert inner_attributes["gen_ai.usage.cost"] == pytest.approx(0.1)
    assert inner_attributes["agentos.cost_status"] == "priced"


def test_a_failed_call_is_a_call_without_usage_or_cost() -> None:
    tracer = Tracer("t")
    try:
        with tracer.start_span("ChatOpenAI", SpanKind.LLM, {"llm.request_model": "gpt-4o"}) as span:
            raise ConnectionError("provider down")
    except ConnectionError:
        pass
    failed = sealed(span)
    attributes = otel_attributes(failed)
    assert otel_span_name(failed) == "chat gpt-4o"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["agentos.cost_status"] == "no_usage"
    assert "gen_ai.usage.input_tokens" not in attributes and "gen_ai.usage.cost" not in attributes


def test_unknown_price_sends_no_cost_and_timeout_is_an_error_type() -> None:
    unpriced = call(
        model="m", usage=Usage(5, 1), cost_usd=None, cost_status=CostStatus.UNPRICED,
        status=SpanStatus.TIMEOUT,
    )  # fmt: skip
    attributes = otel_attributes(unpriced)
    assert "llm.cost.total" not in attributes and "gen_ai.usage.cost" not in attributes
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["agentos.cost_status"] == "unpriced"
    assert attributes["agentos.span.status"] == "timeout"
    assert attributes["error.type"] == "timeout"


def test_model_provider_user_session_and_agent_come_from_the_record() -> None:
    tracer = Tracer("t")
    with tracer.start_trace("job", {"user.id": "u-1", "session.id": "s-1"}):
        with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("step", SpanKind.CHAIN) as step:
                with tracer.start_span("llm", SpanKind.LLM) as llm:
                    tracer.record_usage(llm, model="claude-x", provider="anthropic", input_tokens=3)
    attributes = otel_attributes(sealed(llm))
    assert attributes["gen_ai.agent.name"] == "planner"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["llm.model_name"] == "claude-x"
    assert (attributes["user.id"], attributes["session.id"]) == ("u-1", "s-1")
    assert otel_attributes(sealed(step))["gen_ai.agent.name"] == "planner"


def test_the_root_span_carries_the_trace_name_and_attributes() -> None:
    root = record("root", span_id="00f067aa0ba902b7")
    child = record("child", span_id="00f067aa0ba902b8", parent_id="00f067aa0ba902b7")
    trace = TraceRecord(
        trace_id=root.trace_id, spans=[root, child], name="research",
        attributes={"deployment": "blue"}, user_id="u-9",
    )  # fmt: skip
    root_attributes = otel_attributes(root, trace)
    assert root_attributes["langfuse.trace.name"] == "research"
    assert root_attributes["deployment"] == "blue"
    child_attributes = otel_attributes(child, trace)
    assert "langfuse.trace.name" not in child_attributes and "deployment" not in child_attributes
    assert child_attributes["user.id"] == "u-9"  # the trace's, when the record has none


def test_our_own_attributes_travel_too_and_odd_values_are_text() -> None:
    tracer = Tracer("t")
    with tracer.start_span(
        "step", SpanKind.CHAIN, {"custom.key": {"nested": 1}, "none": None}
    ) as span:
        span.attributes["tags"] = ["a", "b"]
    attributes = otel_attributes(sealed(span))
    assert attributes["custom.key"] == '{"nested":1}'  # made JSON text by the seal
    assert "none" not in attributes
    assert attributes["tag.tags"] == ["a", "b"]
    assert attributes["openinference.span.kind"] == "CHAIN"
    assert "gen_ai.operation.name" not in attributes
