"""The replay server answers the real SDK clients the way the providers do."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from replay_server import ReplayServer

HELLO = [{"role": "user", "content": "Hello!"}]
JOKE = [{"role": "user", "content": "Tell me a funny joke, a one-liner."}]
FRANCE = [{"role": "user", "content": "What's the capital of France?"}]


def _openai(replay: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=replay.openai_url, api_key="sk-test", max_retries=0)


def test_recorded_json_is_served_and_split_into_a_stream(replay: ReplayServer) -> None:
    client = _openai(replay)
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert whole.usage is not None and whole.usage.prompt_tokens == 9
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    # the role chunk comes first and has no content; the usage chunk last, without choices
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_stream_usage_only_when_asked(replay: ReplayServer) -> None:
    client = _openai(replay)
    chunks = list(client.chat.completions.create(model="gpt-3.5-turbo", messages=JOKE, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    served = replay.served[-1]
    assert served.usage == {"prompt_tokens": 18, "completion_tokens": 15, "total_tokens": 33}
    assert served.usage_sent is False

    chunks = list(
        client.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=JOKE,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 15
    assert replay.served[-1].usage_sent is True


def test_recorded_stream_merged_into_json(replay: ReplayServer) -> None:
    answer = _openai(replay).chat.completions.create(model="gpt-3.5-turbo", messages=JOKE)
    assert answer.choices[0].message.content == (
        "Why couldn't the bicycle stand up by itself? It was two tired."
    )
    assert answer.usage is not None and answer.usage.total_tokens == 33


def test_tool_calls_survive_the_split(replay: ReplayServer) -> None:
    client = _openai(replay)
    question = [{"role": "user", "content": "What's the weather in Paris?"}]
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=question)
    calls: dict[int, list[str]] = {}
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=question, stream=True
    ):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            assert call.function is not None
            calls.setdefault(call.index, []).append(call.function.arguments or "")
    recorded = whole.choices[0].message.tool_calls
    assert recorded is not None
    assert "".join(calls[0]) == recorded[0].function.arguments  # type: ignore[union-attr]


def test_embeddings_as_floats_or_base64(replay: ReplayServer) -> None:
    client = _openai(replay)
    # the SDK asks for base64 by default and decodes it
    decoded = client.embeddings.create(model="text-embedding-ada-002", input="hello world")
    floats = client.embeddings.create(
        model="text-embedding-ada-002", input="hello world", encoding_format="float"
    )
    assert replay.requests[0]["body"]["encoding_format"] == "base64"
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert decoded.usage.prompt_tokens == 2


def test_anthropic_json_and_stream(replay: ReplayServer) -> None:
    client = anthropic.Anthropic(base_url=replay.anthropic_url, api_key="sk-ant-x", max_retries=0)
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE)
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE
    ) as stream:
        final = stream.get_final_message()
    assert message.usage.input_tokens == final.usage.input_tokens == 14
    assert final.usage.output_tokens == 11
    assert final.content[0].text == message.content[0].text  # type: ignore[union-attr]


def test_unmatched_request_is_a_404_naming_its_key(replay: ReplayServer) -> None:
    with pytest.raises(openai.NotFoundError, match="no recording"):
        _openai(replay).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "never recorded"}]
        )


def test_failure_injection(replay: ReplayServer) -> None:
    replay.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        _openai(replay).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert _openai(replay).chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_first_delta_delay_holds_back_everything_after_the_first_event(
    replay: ReplayServer,
) -> None:
    replay.first_delta_delay_s = 0.2
    started = time.perf_counter()
    stream = _openai(replay).chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True
    )
    first = next(iter(stream))
    second = next(iter(stream))
    at_second = time.perf_counter() - started
    assert first.choices[0].delta.content == "" and second.choices[0].delta.content
    assert at_second >= 0.2  # the second event waited for the delay (~ms without it)


def test_catalogue_cost_is_genai_prices_own_arithmetic(replay: ReplayServer) -> None:
    _openai(replay).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # 9 input tokens at $0.15/M + 9 output tokens at $0.60/M
    assert replay.served[-1].catalogue_cost() == pytest.approx(9 * 0.15e-6 + 9 * 0.6e-6)
