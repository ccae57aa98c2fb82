"""Usage normalisation: every provider shape -> one Usage (input includes cache tokens)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentos_obs.pricing import (
    Usage,
    extract_usage,
    usage_from_anthropic,
    usage_from_bedrock,
    usage_from_cohere,
    usage_from_gemini,
    usage_from_langchain,
    usage_from_ollama,
    usage_from_openai,
)

# -- the Usage value ------------------------------------------------------------------------


def test_usage_totals_do_not_count_cache_or_reasoning_twice() -> None:
    usage = Usage(
        input_tokens=1000,
        output_tokens=300,
        cache_read_tokens=800,
        cache_write_tokens=100,
        reasoning_tokens=200,
    )
    assert usage.total_tokens == 1300
    assert not usage.is_empty
    assert Usage().is_empty
    assert Usage(reasoning_tokens=1).is_empty is False


def test_usage_adds_field_by_field_and_is_frozen() -> None:
    total = Usage(10, 5, 2, 1, 3) + Usage(1, 2, 3, 4, 5)
    assert total == Usage(11, 7, 5, 5, 8)
    assert sum([Usage(1, 1), Usage(2, 2)], Usage()) == Usage(3, 3)
    with pytest.raises(TypeError):
        _ = Usage() + 1  # type: ignore[operator]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Usage().input_tokens = 3  # type: ignore[misc]
    assert not hasattr(Usage(), "__dict__")  # slots: cheap to create per LLM call


# -- provider shapes, dicts -----------------------------------------------------------------

OPENAI_CHAT = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0},
}
OPENAI_RESPONSES = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 512},
    "output_tokens": 400,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 1300,
}
ANTHROPIC_CACHE = {
    "input_tokens": 50,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
    "output_tokens": 80,
}
GEMINI_SNAKE = {
    "prompt_token_count": 700,
    "cached_content_token_count": 600,
    "candidates_token_count": 90,
    "thoughts_token_count": 40,
    "total_token_count": 830,
}
GEMINI_CAMEL = {
    "promptTokenCount": 700,
    "cachedContentTokenCount": 600,
    "candidatesTokenCount": 90,
    "thoughtsTokenCount": 40,
    "toolUsePromptTokenCount": 10,
}
LANGCHAIN = {
    "input_tokens": 1250,
    "output_tokens": 80,
    "total_tokens": 1330,
    "input_token_details": {"cache_read": 1000, "cache_creation": 200},
    "output_token_details": {"reasoning": 30},
}
BEDROCK = {
    "inputTokens": 50,
    "outputTokens": 80,
    "totalTokens": 1330,
    "cacheReadInputTokens": 1000,
    "cacheWriteInputTokens": 200,
}
COHERE_V2 = {
    "billed_units": {"input_tokens": 30, "output_tokens": 12},
    "tokens": {"input_tokens": 95, "output_tokens": 12},
}
DEEPSEEK = {
    "prompt_tokens": 500,
    "completion_tokens": 20,
    "prompt_cache_hit_tokens": 384,
    "prompt_cache_miss_tokens": 116,
}


@pytest.mark.parametrize(
    ("extractor", "raw", "expected"),
    [
        pytest.param(
            usage_from_openai, OPENAI_CHAT, Usage(1200, 300, 1024, 0, 128), id="openai-chat"
        ),
        pytest.param(
            usage_from_openai, OPENAI_RESPONSES, Usage(900, 400, 512, 0, 256), id="openai-responses"
        ),
        pytest.param(
            usage_from_openai,
            {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": None},
            Usage(10, 2),
            id="openai-chat-details-null",
        ),
        pytest.param(usage_from_openai, DEEPSEEK, Usage(500, 20, 384), id="deepseek"),
        pytest.param(
            usage_from_openai,
            {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38, "queue_time": 0.02},
            Usage(31, 7),
            id="groq",
        ),
        pytest.param(
            usage_from_anthropic, ANTHROPIC_CACHE, Usage(1250, 80, 1000, 200), id="anthropic-cache"
        ),
        pytest.param(
            usage_from_anthropic,
            {"input_tokens": 12, "output_tokens": 3},
            Usage(12, 3),
            id="anthropic-plain",
        ),
        pytest.param(
            usage_from_anthropic,
            {"output_tokens": 42},
            Usage(0, 42),
            id="anthropic-stream-message-delta",
        ),
        pytest.param(usage_from_gemini, GEMINI_SNAKE, Usage(700, 130, 600, 0, 40), id="gemini"),
        pytest.param(
            usage_from_gemini, GEMINI_CAMEL, Usage(710, 130, 600, 0, 40), id="gemini-rest-camel"
        ),
        pytest.param(
            usage_from_langchain, LANGCHAIN, Usage(1250, 80, 1000, 200, 30), id="langchain"
        ),
        pytest.param(
            usage_from_langchain,
            {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
            Usage(5, 1),
            id="langchain-no-details",
        ),
        pytest.param(
            usage_from_bedrock, BEDROCK, Usage(1250, 80, 1000, 200), id="bedrock-converse"
        ),
        pytest.param(usage_from_cohere, COHERE_V2, Usage(30, 12), id="cohere-billed-units"),
        pytest.param(
            usage_from_cohere,
            {"tokens": {"input_tokens": 95, "output_tokens": 12}},
            Usage(95, 12),
            id="cohere-tokens-only",
        ),
        pytest.param(
            usage_from_ollama,
            {"prompt_eval_count": 26, "eval_count": 290, "eval_duration": 4709213000},
            Usage(26, 290),
            id="ollama",
        ),
    ],
)
def test_provider_extractor(extractor: Any, raw: dict[str, Any], expected: Usage) -> None:
    assert extractor(raw) == expected


def test_anthropic_bedrock_and_langchain_views_of_one_call_agree() -> None:
    # One cached Anthropic call, seen raw, through Bedrock Converse and through LangChain.
    raw = usage_from_anthropic(ANTHROPIC_CACHE)
    assert raw == usage_from_bedrock(BEDROCK)
    via_langchain = usage_from_langchain(LANGCHAIN)
    assert raw is not None and via_langchain is not None
    assert dataclasses.replace(via_langchain, reasoning_tokens=0) == raw


# -- SDK-object style -----------------------------------------------------------------------


class _Details(BaseModel):
    cached_tokens: int | None = None


class _ReasoningDetails(BaseModel):
    reasoning_tokens: int | None = None


class _OpenAIUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: _Details | None = None
    completion_tokens_details: _ReasoningDetails | None = None


class _OpenAICompletion(BaseModel):
    id: str
    model: str
    usage: _OpenAIUsage | None = None


class _AnthropicUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _AnthropicMessage(BaseModel):
    id: str
    model: str
    usage: _AnthropicUsage


def test_openai_pydantic_sdk_object() -> None:
    completion = _OpenAICompletion(
        id="chatcmpl-1",
        model="gpt-4o-2024-08-06",
        usage=_OpenAIUsage(
            prompt_tokens=1200,
            completion_tokens=300,
            total_tokens=1500,
            prompt_tokens_details=_Details(cached_tokens=1024),
            completion_tokens_details=_ReasoningDetails(reasoning_tokens=128),
        ),
    )
    assert usage_from_openai(completion.usage) == Usage(1200, 300, 1024, 0, 128)
    assert extract_usage(completion) == Usage(1200, 300, 1024, 0, 128)
    assert extract_usage(_OpenAICompletion(id="x", model="gpt-4o")) is None


def test_anthropic_pydantic_sdk_object_with_and_without_cache() -> None:
    cached = _AnthropicMessage(
        id="msg_1",
        model="claude-sonnet-4-5",
        usage=_AnthropicUsage(
            input_tokens=50,
            output_tokens=80,
            cache_read_input_tokens=1000,
            cache_creation_input_tokens=200,
        ),
    )
    assert extract_usage(cached) == Usage(1250, 80, 1000, 200)
    # The SDK sets absent cache counts to None: still read, as plain input.
    plain = _AnthropicMessage(
        id="msg_2",
        model="claude-sonnet-4-5",
        usage=_AnthropicUsage(input_tokens=9, output_tokens=4),
    )
    assert extract_usage(plain, provider="anthropic") == Usage(9, 4)


def test_gemini_sdk_object_via_simplenamespace() -> None:
    response = SimpleNamespace(
        text="hi",
        usage_metadata=SimpleNamespace(
            prompt_token_count=700,
            cached_content_token_count=None,
            candidates_token_count=90,
            thoughts_token_count=40,
            tool_use_prompt_token_count=None,
        ),
    )
    assert extract_usage(response) == Usage(700, 130, 0, 0, 40)


# -- extract_usage: shape detection and wrappers --------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param({"usage": OPENAI_CHAT}, Usage(1200, 300, 1024, 0, 128), id="openai-chat"),
        pytest.param(
            {"usage": OPENAI_RESPONSES, "output": []},
            Usage(900, 400, 512, 0, 256),
            id="openai-responses",
        ),
        pytest.param({"usage": ANTHROPIC_CACHE}, Usage(1250, 80, 1000, 200), id="anthropic"),
        pytest.param(
            {"usageMetadata": GEMINI_CAMEL}, Usage(710, 130, 600, 0, 40), id="gemini-rest"
        ),
        pytest.param({"usage_metadata": LANGCHAIN}, Usage(1250, 80, 1000, 200, 30), id="langchain"),
        pytest.param(
            {"output": {"message": {}}, "usage": BEDROCK},
            Usage(1250, 80, 1000, 200),
            id="bedrock-converse",
        ),
        pytest.param({"usage": COHERE_V2}, Usage(30, 12), id="cohere-v2"),
        pytest.param(
            {"meta": {"billed_units": {"input_tokens": 4, "output_tokens": 2}}},
            Usage(4, 2),
            id="cohere-v1",
        ),
        pytest.param(
            {"choices": [], "x_groq": {"usage": {"prompt_tokens": 31, "completion_tokens": 7}}},
            Usage(31, 7),
            id="groq-stream-chunk",
        ),
        pytest.param(
            {"llm_output": {"token_usage": {"prompt_tokens": 8, "completion_tokens": 3}}},
            Usage(8, 3),
            id="langchain-llm-output-token-usage",
        ),
        pytest.param(
            {"model": "llama3", "prompt_eval_count": 26, "eval_count": 290},
            Usage(26, 290),
            id="ollama",
        ),
        pytest.param(OPENAI_CHAT, Usage(1200, 300, 1024, 0, 128), id="bare-openai"),
        pytest.param(ANTHROPIC_CACHE, Usage(1250, 80, 1000, 200), id="bare-anthropic"),
        pytest.param(Usage(1, 2), Usage(1, 2), id="already-normalised"),
    ],
)
def test_extract_usage_detects_shape(obj: Any, expected: Usage) -> None:
    assert extract_usage(obj) == expected


def test_provider_hint_picks_the_reader_for_bare_input_output_tokens() -> None:
    bare = {"input_tokens": 10, "output_tokens": 5}
    assert extract_usage(bare) == Usage(10, 5)
    assert extract_usage(bare, provider="anthropic") == Usage(10, 5)
    assert extract_usage(bare, provider="amazon_bedrock") == Usage(10, 5)
    # The hint never overrides distinctive keys: LangChain's usage is already normalised
    # even when the model behind it is Anthropic's.
    assert extract_usage(LANGCHAIN, provider="anthropic") == Usage(1250, 80, 1000, 200, 30)
    # …and Anthropic's cache keys are read the Anthropic way whatever the hint says.
    assert extract_usage(ANTHROPIC_CACHE, provider="openai") == Usage(1250, 80, 1000, 200)


def test_langchain_ai_message() -> None:
    from langchain_core.messages import AIMessage

    message = AIMessage(
        content="hi",
        usage_metadata={
            "input_tokens": 1250,
            "output_tokens": 80,
            "total_tokens": 1330,
            "input_token_details": {"cache_read": 1000, "cache_creation": 200},
            "output_token_details": {"reasoning": 30},
        },
        response_metadata={"model_name": "claude-sonnet-4-5"},
    )
    assert extract_usage(message, provider="anthropic") == Usage(1250, 80, 1000, 200, 30)
    older = AIMessage(
        content="hi",
        response_metadata={"token_usage": {"prompt_tokens": 8, "completion_tokens": 3}},
    )
    assert extract_usage(older) == Usage(8, 3)


def test_llama_index_chat_response_raw() -> None:
    from llama_index.core.llms import ChatMessage, ChatResponse

    response = ChatResponse(
        message=ChatMessage(role="assistant", content="hi"),
        raw={"id": "chatcmpl-1", "model": "gpt-4o", "usage": OPENAI_CHAT},
    )
    assert extract_usage(response) == Usage(1200, 300, 1024, 0, 128)
    via_kwargs = ChatResponse(
        message=ChatMessage(role="assistant", content="hi"),
        additional_kwargs={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    )
    assert extract_usage(via_kwargs) == Usage(5, 2)


# -- malformed input ------------------------------------------------------------------------


class _Exploding:
    @property
    def usage(self) -> Any:
        raise RuntimeError("SDK property blew up")

    @property
    def prompt_tokens(self) -> int:
        raise KeyError("nope")


def _self_referencing() -> dict[str, Any]:
    loop: dict[str, Any] = {"prompt_tokens": "x"}
    loop["usage"] = loop
    loop["raw"] = {"usage": loop}
    return loop


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty-string"),
        pytest.param("prompt_tokens", id="string"),
        pytest.param(42, id="int"),
        pytest.param([], id="list"),
        pytest.param({}, id="empty-dict"),
        pytest.param({"usage": None}, id="usage-null"),
        pytest.param({"usage": "lots"}, id="usage-string"),
        pytest.param({"prompt_tokens": -5, "completion_tokens": None}, id="negative"),
        pytest.param({"prompt_tokens": "abc", "completion_tokens": [1]}, id="garbage"),
        pytest.param({"prompt_tokens": True, "completion_tokens": False}, id="bools"),
        pytest.param({"prompt_tokens": math.nan, "completion_tokens": math.inf}, id="nan-inf"),
        pytest.param({"prompt_tokens": 1.5}, id="fractional-float"),
        pytest.param(_Exploding(), id="raising-properties"),
        pytest.param(_self_referencing(), id="self-referencing"),
        pytest.param(object(), id="plain-object"),
    ],
)
def test_malformed_input_gives_none(obj: Any) -> None:
    assert extract_usage(obj) is None
    for extractor in (
        usage_from_openai,
        usage_from_anthropic,
        usage_from_gemini,
        usage_from_langchain,
        usage_from_bedrock,
        usage_from_cohere,
        usage_from_ollama,
    ):
        assert extractor(obj) is None


def test_digit_strings_and_whole_floats_are_coerced_garbage_fields_ignored() -> None:
    raw = {
        "prompt_tokens": " 120 ",
        "completion_tokens": 30.0,
        "prompt_tokens_details": {"cached_tokens": "lots"},
        "completion_tokens_details": {"reasoning_tokens": -1},
    }
    assert usage_from_openai(raw) == Usage(120, 30)


def test_mock_objects_give_none_not_garbage() -> None:
    from unittest.mock import MagicMock, NonCallableMagicMock

    # Mocks answer every attribute with another mock: the search stays bounded and finds
    # nothing (this took seconds before the node budget).
    assert extract_usage(MagicMock()) is None
    assert extract_usage(NonCallableMagicMock()) is None
    assert extract_usage({"usage": NonCallableMagicMock()}) is None


def test_totals_smaller_than_their_breakdown_are_repaired() -> None:
    # A provider bug or a partial chunk: cached > prompt. Invariants hold anyway.
    usage = usage_from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 7},
        }
    )
    assert usage == Usage(50, 7, 50, 0, 7)


def test_zero_counts_are_usage_not_none() -> None:
    assert usage_from_openai({"prompt_tokens": 0, "completion_tokens": 0}) == Usage()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "usage",
                    "usage_metadata",
                    "prompt_tokens",
                    "completion_tokens",
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "prompt_tokens_details",
                    "cached_tokens",
                    "reasoning_tokens",
                    "inputTokens",
                    "outputTokens",
                    "cacheReadInputTokens",
                    "prompt_token_count",
                    "thoughts_token_count",
                    "billed_units",
                    "input_token_details",
                    "cache_read",
                    "raw",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.sampled_from([None, "openai", "anthropic", "aws", "google_genai"]))
def test_extract_usage_never_raises_and_keeps_invariants(obj: Any, provider: str | None) -> None:
    usage = extract_usage(obj, provider)
    if usage is not None:
        assert min(dataclasses.astuple(usage)) >= 0
        assert usage.input_tokens >= usage.cache_read_tokens + usage.cache_write_tokens
        assert usage.output_tokens >= usage.reasoning_tokens
