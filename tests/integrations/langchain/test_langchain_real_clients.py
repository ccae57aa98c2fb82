"""langchain-openai and langchain-anthropic against the replay server: what each call costs,
and whether that number can be trusted.

A custom ``base_url`` turns langchain-openai's ``stream_usage`` off, so those streams carry no
usage: such a call is counted, never silent, and its tokens are estimated offline within the
stated tolerance. Reported usage is priced exactly as genai-prices prices the server's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

import agentos_obs.attributes as attr
from agentos_obs.integrations import set_usage_options
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.tracing import CostStatus
from replay_server import ReplayServer
from usage_checks import Recorder, assert_estimated, assert_exact

JOKE = "Tell me a funny joke, a one-liner."


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def handler(rec: Recorder) -> AgentOSCallbackHandler:
    return AgentOSCallbackHandler(tracer=rec.tracer)


@pytest.fixture
def no_estimates() -> Iterator[None]:
    previous = set_usage_options(estimate=False)
    yield
    set_usage_options(estimate=previous.estimate)


def openai_model(replay: ReplayServer, model: str = "gpt-3.5-turbo", **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=replay.openai_url, api_key="sk-test", max_retries=0, **kwargs
    )


def config(handler: AgentOSCallbackHandler, **extra: Any) -> dict[str, Any]:
    return {"callbacks": [handler], **extra}


def test_custom_base_url_stream_has_no_usage_and_is_estimated(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    model = openai_model(replay)
    assert not model.stream_usage  # what a new user gets with a proxy or a local server
    text = "".join(str(c.content) for c in model.stream(JOKE, config=config(handler)))

    assert text.startswith("Why couldn't the bicycle")
    (call,) = rec.calls
    assert call.provider == "openai" and call.model == "gpt-3.5-turbo-0125"
    assert_estimated(rec.calls, replay.served)
    assert rec.traces[0].rollup.estimated_llm_calls == 1
    assert rec.traces[0].rollup.llm_calls == 1


def test_without_estimation_the_call_is_counted_without_usage(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler, no_estimates: None
) -> None:
    list(openai_model(replay).stream(JOKE, config=config(handler)))

    (call,) = rec.calls
    assert call.cost_status is CostStatus.NO_USAGE and call.cost_usd is None
    rollup = rec.traces[0].rollup
    assert rollup.llm_calls == 1 and rollup.no_usage_llm_calls == 1
    assert not rollup.cost_complete


def test_reported_usage_is_priced_exactly(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    hello = openai_model(replay, "gpt-4o-mini")
    hello.invoke("Hello!", config=config(handler))
    list(openai_model(replay, stream_usage=True).stream(JOKE, config=config(handler)))

    assert [s.usage_sent for s in replay.served] == [True, True]
    assert_exact(rec.calls, replay.served)
    assert "llm.usage.estimated" not in rec.calls[0].attributes


def test_cached_tokens_priced_at_the_cache_rate(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    from json import loads
    from pathlib import Path

    recorded = loads(Path("tests/cassettes/openai_chat_cached_tokens.json").read_text())
    prompt = recorded["interactions"][1]["request"]["messages"][0]["content"]
    openai_model(replay, "gpt-4o-mini").invoke(prompt, config=config(handler))

    (call,) = rec.calls
    assert call.cache_read_tokens == 1280
    assert_exact(rec.calls, replay.served)


def test_estimation_works_with_content_capture_off(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    assert rec.tracer.config.capture_content is False
    list(openai_model(replay).stream(JOKE, config=config(handler)))

    (call,) = rec.calls
    assert call.cost_status is CostStatus.ESTIMATED
    stored = " ".join(str(v) for v in call.attributes.values())
    assert "joke" not in stored and "bicycle" not in stored
    assert attr.LLM_INPUT_MESSAGES not in call.attributes
    assert attr.LLM_OUTPUT_MESSAGES not in call.attributes


def test_streamed_tool_calls_with_tool_history_are_estimated(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    """The recorded request replayed through LangChain: tool definitions, an assistant turn
    with two tool calls, two tool results; two parallel tool calls back."""

    def get_weather(city: str) -> str:
        """finds the weather for a given city"""
        return ""

    def get_population(city: str) -> str:
        """finds the population for a given city"""
        return ""

    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"finds the {what} for a given city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {
                            "type": "string",
                            "description": f"The city to find the {what} for, e.g. 'London'",
                        }
                    },
                    "required": ["city"],
                },
            },
        }
        for name, what in (("get_weather", "weather"), ("get_population", "population"))
    ]
    history = [
        AIMessage(
            content="",
            tool_calls=[
                {"id": "call_62136355", "name": "get_weather", "args": {"city": "New York"}},
                {"id": "call_62136356", "name": "get_population", "args": {"city": "New York"}},
            ],
        ),
        ToolMessage('{"city": "New York", "weather": "fine"}', tool_call_id="call_62136355"),
        ToolMessage('{"city": "New York", "weather": "large"}', tool_call_id="call_62136356"),
        AIMessage("In New York the weather is fine and the population is large."),
        HumanMessage("What's the weather and population in San Francisco?"),
    ]
    model = openai_model(replay, "gpt-4o-mini").bind_tools(tools)
    chunks = list(model.stream(history, config=config(handler)))

    calls = [c for chunk in chunks for c in chunk.tool_call_chunks]
    assert {c["name"] for c in calls if c["name"]} == {"get_weather", "get_population"}
    assert_estimated(rec.calls, replay.served)


def test_async_streams_under_gather_each_estimated(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    model = openai_model(replay)

    async def one() -> None:
        async for _ in model.astream(JOKE, config=config(handler)):
            pass

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(8)))

    asyncio.run(main())
    assert len(rec.traces) == 8
    assert_estimated(rec.calls, replay.served)


def test_time_to_first_token_waits_for_content_not_the_role_chunk(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    replay.first_delta_delay_s = 0.25
    list(openai_model(replay).stream(JOKE, config=config(handler)))

    (call,) = rec.calls
    ttft = rec.ttft_ms(call)
    assert ttft is not None and ttft >= 240
    assert ttft <= call.duration_ms


def test_langgraph_thread_id_becomes_the_session(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    model = openai_model(replay, "gpt-4o-mini")

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    app = graph.compile(checkpointer=InMemorySaver())
    app.invoke(
        {"messages": [HumanMessage("Hello!")]},
        config=config(handler, configurable={"thread_id": "conversation-7"}),
    )
    app.invoke(
        {"messages": [HumanMessage("Hello!")]},
        config=config(
            handler, configurable={"thread_id": "conversation-8"}, metadata={"session_id": "s1"}
        ),
    )

    first, second = rec.traces
    assert first.session_id == "conversation-7"
    assert {r.session_id for r in first.spans} == {"conversation-7"}
    assert second.session_id == "s1"  # an explicit session id wins


def test_anthropic_stream_and_invoke_priced_exactly(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    model = ChatAnthropic(
        model="claude-sonnet-4-6",
        base_url=replay.anthropic_url,
        api_key="sk-ant-test",
        max_tokens=1024,
        max_retries=0,
    )
    model.invoke("What's the capital of France?", config=config(handler))
    list(model.stream("Why is the sky blue? Answer in 5 words or less", config=config(handler)))

    assert [c.provider for c in rec.calls] == ["anthropic", "anthropic"]
    assert_exact(rec.calls, replay.served)


def test_anthropic_time_to_first_token_waits_for_the_first_text_delta(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    model = ChatAnthropic(
        model="claude-sonnet-4-6",
        base_url=replay.anthropic_url,
        api_key="sk-ant-test",
        max_tokens=1024,
        max_retries=0,
    )
    replay.first_delta_delay_s = 0.25
    list(model.stream("What's the capital of France?", config=config(handler)))

    ttft = rec.ttft_ms(rec.calls[0])
    assert ttft is not None and ttft >= 240


def test_tool_calls_call_ids_and_definitions_in_captured_content(replay: ReplayServer) -> None:
    import json

    rec = Recorder(capture_content=True)
    handler = AgentOSCallbackHandler(tracer=rec.tracer)

    def get_weather(location: str) -> str:
        """Get the weather for a location."""
        return "The weather in London is sunny."

    model = openai_model(replay, "gpt-4o-mini", temperature=0.0).bind_tools([get_weather])
    history: list[Any] = [
        ("system", "You are a helpful assistant."),
        HumanMessage("What's the weather in London?"),
    ]
    first = model.invoke(history, config=config(handler))
    call_id = first.tool_calls[0]["id"]
    history += [first, ToolMessage("The weather in London is sunny.", tool_call_id=call_id)]
    model.invoke(history, config=config(handler))

    asked, answered = rec.calls
    assert json.loads(asked.attributes[attr.LLM_TOOLS]) == [
        {
            "name": "get_weather",
            "description": "Get the weather for a location.",
            "parameters": {
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
                "type": "object",
            },
        }
    ]
    out = json.loads(asked.attributes[attr.LLM_OUTPUT_MESSAGES])
    assert out["content"] == ""
    assert out["tool_calls"] == [
        {"id": call_id, "name": "get_weather", "arguments": {"location": "London"}}
    ]
    sent = json.loads(answered.attributes[attr.LLM_INPUT_MESSAGES])
    assert sent[2]["tool_calls"][0]["id"] == call_id
    assert sent[3]["role"] == "tool" and sent[3]["tool_call_id"] == call_id
    # recorded without usage (the real silent case): both calls counted and estimated
    assert [c.cost_status for c in rec.calls] == [CostStatus.ESTIMATED] * 2


def test_a_stream_that_breaks_off_is_a_failed_call_with_what_it_streamed_estimated(
    replay: ReplayServer, rec: Recorder, handler: AgentOSCallbackHandler
) -> None:
    replay.break_stream_after = 6  # role chunk and five words, then garbage
    received = []
    with pytest.raises(ValueError):  # the client's own error reaches the app unchanged
        for chunk in openai_model(replay).stream(JOKE, config=config(handler)):
            received.append(chunk.content)

    (call,) = rec.calls
    assert call.failed and call.cost_status is CostStatus.ESTIMATED
    assert call.input_tokens == 18  # the whole prompt was processed
    assert call.output_tokens == 5  # what came back: "Why couldn't the bicycle"
    assert "".join(map(str, received)) == "Why couldn't the bicycle"
