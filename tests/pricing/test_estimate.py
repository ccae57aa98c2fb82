"""Offline token estimates against every recorded call in tests/cassettes (real provider
counts): the tokenizer path within TOKENIZER_TOLERANCE, the approximation within
APPROXIMATION_TOLERANCE on text; odd input never raises."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.pricing._estimate as est
from agentos_obs.pricing import (
    APPROXIMATION_TOLERANCE,
    TOKENIZER_TOLERANCE,
    Tolerance,
    count_tokens,
    encoding_for,
    estimate_usage,
    tokenizer_available,
)
from replay_server import _anthropic_json_from_events, _openai_json_from_chunks

CASSETTES = Path(__file__).parents[1] / "cassettes"


def _interactions(api: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(CASSETTES.glob("*.json")):
        for item in json.loads(path.read_text())["interactions"]:
            if item["api"] == api:
                out.append(item)
    return out


def _openai_answer(response: dict[str, Any]) -> dict[str, Any]:
    if "json" in response:
        return response["json"]  # type: ignore[no-any-return]
    chunks = [e["data"] for e in response["sse"] if e["data"] != "[DONE]"]
    return _openai_json_from_chunks(chunks)


def _openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        item = {k: v for k, v in message.items() if k != "tool_calls"}
        if message.get("tool_calls"):
            item["tool_calls"] = [
                {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                for c in message["tool_calls"]
            ]
        out.append(item)
    return out


def _name(item: dict[str, Any]) -> str:
    return str(item["source"]["path"].rsplit("/")[-1])


OPENAI_CALLS = [
    i for i in _interactions("openai.chat") if (_openai_answer(i["response"]).get("usage"))
]


@pytest.mark.parametrize("item", OPENAI_CALLS, ids=_name)
def test_openai_calls_within_the_tokenizer_tolerance(item: dict[str, Any]) -> None:
    request, answer = item["request"], _openai_answer(item["response"])
    message = answer["choices"][0]["message"]
    estimate = estimate_usage(
        request["model"],
        messages=_openai_messages(request["messages"]),
        tools=request.get("tools") or (),
        output=message.get("content") or "",
        output_tool_calls=[
            {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in message.get("tool_calls") or ()
        ],
    )
    assert estimate.method in ("o200k_base", "cl100k_base")
    assert estimate.tolerance == TOKENIZER_TOLERANCE
    usage = answer["usage"]
    assert TOKENIZER_TOLERANCE.allows(estimate.usage.input_tokens, usage["prompt_tokens"])
    assert TOKENIZER_TOLERANCE.allows(estimate.usage.output_tokens, usage["completion_tokens"])


def test_plain_text_chats_are_counted_exactly() -> None:
    # OpenAI's own counts: "Hello!" -> 9 prompt tokens (gpt-4o-mini, o200k);
    # the joke -> 18 (gpt-3.5-turbo, cl100k)
    hello = estimate_usage(
        "gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello!"}],
        output="Hello! How can I assist you today?",
    )
    joke = estimate_usage(
        "gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a funny joke, a one-liner."}],
        output="Why couldn't the bicycle stand up by itself? It was two tired.",
    )
    assert (hello.usage.input_tokens, hello.usage.output_tokens) == (9, 9)
    assert (joke.usage.input_tokens, joke.usage.output_tokens) == (18, 15)


def test_embedding_inputs_counted_exactly() -> None:
    for item in _interactions("openai.embeddings"):
        inputs = item["request"]["input"]
        texts = inputs if isinstance(inputs, list) else [inputs]
        counted = sum(count_tokens(t, item["request"]["model"]) for t in texts)
        assert counted == item["response"]["json"]["usage"]["prompt_tokens"]


def _anthropic_answer(response: dict[str, Any]) -> dict[str, Any]:
    if "json" in response:
        return response["json"]  # type: ignore[no-any-return]
    return _anthropic_json_from_events([e["data"] for e in response["sse"]])


@pytest.mark.parametrize(
    "item", _interactions("anthropic.messages"), ids=lambda i: i["source"]["path"].rsplit("/")[-1]
)
def test_claude_within_the_approximation_tolerance(item: dict[str, Any]) -> None:
    request, answer = item["request"], _anthropic_answer(item["response"])
    estimate = estimate_usage(
        request["model"],
        messages=request["messages"],
        tools=request.get("tools") or (),
        output="".join(b.get("text", "") for b in answer["content"] if b["type"] == "text"),
        output_tool_calls=[
            {"name": b["name"], "arguments": b["input"]}
            for b in answer["content"]
            if b["type"] == "tool_use"
        ],
    )
    assert estimate.method == est.CLAUDE_APPROXIMATION
    assert estimate.tolerance == APPROXIMATION_TOLERANCE
    usage = answer["usage"]
    assert APPROXIMATION_TOLERANCE.allows(estimate.usage.input_tokens, usage["input_tokens"])
    assert APPROXIMATION_TOLERANCE.allows(estimate.usage.output_tokens, usage["output_tokens"])


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-sonnet-4-6", None),
        ("llama3", None),
        ("", None),
        (None, None),
    ],
)
def test_model_families(model: str | None, encoding: str | None) -> None:
    assert encoding_for(model) == encoding


def test_without_the_tokenizer_openai_models_fall_back_to_chars_over_4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(est, "_counters", {"o200k_base": None, "cl100k_base": None})
    assert not tokenizer_available("gpt-4o")
    estimate = estimate_usage("gpt-4o", messages=[{"role": "user", "content": "x" * 40}])
    assert estimate.method == est.APPROXIMATION
    assert estimate.usage.input_tokens == 3 + 1 + 10 + 3  # framing, role, 40/4, priming
    assert count_tokens("abcdefghi", "gpt-4o") == 3


def test_tolerance_is_relative_or_absolute_whichever_is_larger() -> None:
    tolerance = Tolerance(relative=0.1, absolute=5)
    assert tolerance.allows(14, 9) and not tolerance.allows(15, 9)
    assert tolerance.allows(1100, 1000) and not tolerance.allows(1101, 1000)


def test_huge_text_is_counted_in_bounded_time() -> None:
    text = "All work and no play makes Jack a dull boy. " * 50_000  # 2.2 MB
    started = time.perf_counter()
    counted = count_tokens(text, "gpt-4o")
    elapsed = time.perf_counter() - started
    exact_head = count_tokens(text[: est.MAX_COUNTED_CHARS], "gpt-4o")
    assert counted == pytest.approx(exact_head * len(text) / est.MAX_COUNTED_CHARS, rel=1e-6)
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": None, "content": None}],
        [{"content": [{"type": "image_url"}, {"type": "text", "text": "hi"}, 7]}],
        [{"role": "assistant", "tool_calls": [{"name": None, "arguments": {"a": [1, {2}]}}]}],
        [{"role": "user", "content": {"weird": object()}}],
        [],
    ],
)
def test_odd_messages_never_raise(messages: list[dict[str, Any]]) -> None:
    tools: list[Any] = [{"function": {"name": 3, "parameters": {"properties": {"a": None}}}}, {}]
    estimate = estimate_usage("gpt-4o", messages=messages, tools=tools, output="ok")
    assert estimate.usage.output_tokens == 1
