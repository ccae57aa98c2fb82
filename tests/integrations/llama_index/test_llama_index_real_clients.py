"""llama-index-llms-openai (and its FunctionAgent) against the replay server.

LlamaIndex streams never ask for usage, and a FunctionAgent streams every call: each such
call is counted, keeps its provider, and is estimated within the stated tolerance. Reported
usage (non-streaming calls, or a stream that asks for it) is priced exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI

import agentos_obs.attributes as attr
from agentos_obs.integrations import set_usage_options
from agentos_obs.integrations.llama_index import AgentOSSpanHandler
from agentos_obs.tracing import CostStatus
from replay_server import ReplayServer
from usage_checks import Recorder, assert_estimated, assert_exact

HELLO = [ChatMessage(role="user", content="Hello!")]


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    handler = AgentOSSpanHandler(tracer=recorder.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)
    yield recorder
    dispatcher.span_handlers.remove(handler)
    dispatcher.event_handlers.remove(handler.event_handler)
    handler.bridge.close()


@pytest.fixture
def no_estimates() -> Iterator[None]:
    previous = set_usage_options(estimate=False)
    yield
    set_usage_options(estimate=previous.estimate)


def llm(replay: ReplayServer, **kwargs: Any) -> OpenAI:
    return OpenAI(
        model="gpt-4o-mini", api_base=replay.openai_url, api_key="sk-test", max_retries=0, **kwargs
    )


def test_chat_reports_usage_priced_exactly(replay: ReplayServer, rec: Recorder) -> None:
    llm(replay).chat(HELLO)
    assert_exact(rec.calls, replay.served)


def test_stream_without_usage_is_counted_estimated_and_keeps_its_provider(
    replay: ReplayServer, rec: Recorder
) -> None:
    text = "".join(r.delta or "" for r in llm(replay).stream_chat(HELLO))

    assert text == "Hello! How can I assist you today?"
    (call,) = rec.calls
    assert call.provider == "openai"  # the same series as LangChain's for this model
    assert call.model == "gpt-4o-mini-2024-07-18"
    assert_estimated(rec.calls, replay.served)


def test_stream_without_usage_and_without_estimation_keeps_its_provider(
    replay: ReplayServer, rec: Recorder, no_estimates: None
) -> None:
    list(llm(replay).stream_chat(HELLO))

    (call,) = rec.calls
    assert call.cost_status is CostStatus.NO_USAGE
    assert call.provider == "openai"
    assert rec.traces[0].rollup.no_usage_llm_calls == 1


def test_stream_that_asks_for_usage_is_priced_exactly(replay: ReplayServer, rec: Recorder) -> None:
    model = llm(replay, additional_kwargs={"stream_options": {"include_usage": True}})
    list(model.stream_chat(HELLO))

    assert replay.served[0].usage_sent
    assert_exact(rec.calls, replay.served)


def test_async_stream_estimated(replay: ReplayServer, rec: Recorder) -> None:
    async def main() -> None:
        async for _ in await llm(replay).astream_chat(HELLO):
            pass

    asyncio.run(main())
    assert_estimated(rec.calls, replay.served)


def get_weather(city: str) -> str:
    return "It's sunny in Paris."


def weather_agent(replay: ReplayServer) -> FunctionAgent:
    # The tool as the recorded request offered it: no description.
    tool = FunctionTool.from_defaults(get_weather, name="get_weather", description="")
    return FunctionAgent(tools=[tool], llm=llm(replay))


def test_function_agent_streams_every_call_each_estimated(
    replay: ReplayServer, rec: Recorder
) -> None:
    async def main() -> Any:
        return await weather_agent(replay).run("What's the weather in Paris?")

    answer = asyncio.run(main())

    assert "sunny" in str(answer)
    assert all(s.stream and not s.usage_sent for s in replay.served)
    assert_estimated(rec.calls, replay.served)
    (trace,) = rec.traces
    assert trace.rollup.llm_calls == 2 and trace.rollup.estimated_llm_calls == 2
    assert trace.total_cost_usd > 0
    assert {c.provider for c in rec.calls} == {"openai"}


def test_function_agent_tool_calls_and_definitions_in_captured_content(
    replay: ReplayServer,
) -> None:
    rec = Recorder(capture_content=True)
    handler = AgentOSSpanHandler(tracer=rec.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)

    async def main() -> Any:
        return await weather_agent(replay).run("What's the weather in Paris?")

    try:
        asyncio.run(main())
    finally:
        dispatcher.span_handlers.remove(handler)
        dispatcher.event_handlers.remove(handler.event_handler)
    import json

    first, second = rec.calls
    tools = json.loads(first.attributes[attr.LLM_TOOLS])
    assert tools == [
        {
            "name": "get_weather",
            "parameters": {
                "properties": {"city": {"title": "City", "type": "string"}},
                "required": ["city"],
                "type": "object",
                "additionalProperties": False,
            },
        }
    ]
    call_id = "call_HI3bFDQuCgzux3QrZyumWfQf"
    output = json.loads(first.attributes[attr.LLM_OUTPUT_MESSAGES])
    assert output["tool_calls"] == [
        {"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    history = json.loads(second.attributes[attr.LLM_INPUT_MESSAGES])
    assert history[1]["tool_calls"][0]["id"] == call_id
    assert history[2]["role"] == "tool" and history[2]["tool_call_id"] == call_id


def test_time_to_first_token_waits_for_content_not_the_role_chunk(
    replay: ReplayServer, rec: Recorder
) -> None:
    replay.first_delta_delay_s = 0.25
    list(llm(replay).stream_chat(HELLO))

    ttft = rec.ttft_ms(rec.calls[0])
    assert ttft is not None and ttft >= 240
