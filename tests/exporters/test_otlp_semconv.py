"""Mapping of our span model onto GenAI / OpenInference attributes (no network)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest

from agentos_obs.exporters._semconv import (
    otel_attributes,
    otel_span_name,
    provider_names,
    to_attribute_value,
)
from agentos_obs.tracing import Span, SpanKind, SpanStatus, Tracer


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
        ([1, "a"], '[1, "a"]'),
        ([1, True], "[1, true]"),
        ({"k": [1]}, '{"k": [1]}'),
        ((1, 2), [1, 2]),
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
    llm = Span("ChatOpenAI", SpanKind.LLM)
    assert otel_span_name(llm) == "ChatOpenAI"  # no model known: keep the name
    llm.model_name = "gpt-4o-2024-08-06"
    assert otel_span_name(llm) == "chat gpt-4o-2024-08-06"
    llm.attributes["llm.request_model"] = "gpt-4o"
    assert otel_span_name(llm) == "chat gpt-4o"  # the requested model, as the spec says
    assert otel_span_name(Span("t", SpanKind.TOOL, attributes={"tool.name": "calc"})) == (
        "execute_tool calc"
    )
    assert otel_span_name(Span("fallback", SpanKind.TOOL)) == "execute_tool fallback"
    assert otel_span_name(Span("x", SpanKind.AGENT, attributes={"agent.name": "planner"})) == (
        "invoke_agent planner"
    )
    assert otel_span_name(Span("RunnableSequence", SpanKind.CHAIN)) == "RunnableSequence"
    assert otel_span_name(Span("", SpanKind.MEMORY)) == "memory"


def test_plain_prompt_and_truncated_messages_fall_back_to_input_value() -> None:
    span = Span("llm", SpanKind.LLM)
    span.attributes["llm.input_messages"] = "Tell me a joke"
    span.attributes["llm.output_messages"] = '[{"role": "ai", "content": "Why did the…'
    attributes = otel_attributes(span)
    assert attributes["input.value"] == "Tell me a joke"
    assert attributes["output.value"].startswith('[{"role": "ai"')
    assert "gen_ai.output.messages" not in attributes
    assert not any(key.startswith("llm.output_messages.") for key in attributes)


def test_message_content_that_is_structured_becomes_json_text() -> None:
    span = Span("llm", SpanKind.LLM)
    span.attributes["llm.input_messages"] = json.dumps(
        [{"role": "human", "content": [{"type": "text", "text": "hi"}]}, "raw string"]
    )
    attributes = otel_attributes(span)
    assert json.loads(attributes["llm.input_messages.0.message.content"]) == [
        {"type": "text", "text": "hi"}
    ]
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.input_messages.1.message.content"] == "raw string"


def test_usage_repeated_by_an_outer_span_is_flagged() -> None:
    tracer = Tracer("t")
    with tracer.start_span("achat", SpanKind.LLM) as outer:
        with tracer.start_span("chat", SpanKind.LLM) as inner:
            tracer.record_usage(inner, model="m", input_tokens=5, output_tokens=1, cost_usd=0.1)
        tracer.record_usage(outer, model="m", input_tokens=5, output_tokens=1, cost_usd=0.1)
    assert otel_attributes(outer)["agentos.usage.counted"] is False
    assert "agentos.usage.counted" not in otel_attributes(inner)


def test_unknown_price_sends_no_cost_and_timeout_is_an_error_type() -> None:
    tracer = Tracer("t")
    span = tracer.begin_span("chat", SpanKind.LLM)
    tracer.record_usage(span, model="m", input_tokens=5, output_tokens=1)
    span.cost_usd = None  # whatever the catalogue knows: no price
    tracer.end_span(span, status=SpanStatus.TIMEOUT)
    attributes = otel_attributes(span)
    assert "llm.cost.total" not in attributes and "gen_ai.usage.cost" not in attributes
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["agentos.span.status"] == "timeout"
    assert attributes["error.type"] == "timeout"


def test_our_own_attributes_travel_too_and_odd_values_are_text() -> None:
    span = Span("step", SpanKind.CHAIN, attributes={"custom.key": {"nested": 1}, "none": None})
    span.attributes["tags"] = ["a", "b"]
    attributes = otel_attributes(span)
    assert attributes["custom.key"] == '{"nested": 1}'
    assert "none" not in attributes
    assert attributes["tag.tags"] == ["a", "b"]
    assert attributes["openinference.span.kind"] == "CHAIN"
    assert "gen_ai.operation.name" not in attributes
