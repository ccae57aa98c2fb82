"""The provider-SDK layer (agentos_obs.integrations.openai / .anthropic) with the real SDKs,
LangChain and LlamaIndex against the replay server: exact usage from the SDK's response
objects, on the framework's span without double counting, or on spans of its own."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from langchain_core.runnables import RunnableLambda
from llama_index.core.instrumentation import get_dispatcher

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
from agentos_obs.errors import BudgetExceeded
from agentos_obs.integrations import anthropic as obs_anthropic
from agentos_obs.integrations import openai as obs_openai
from agentos_obs.integrations import set_usage_options
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.integrations.llama_index import AgentOSSpanHandler
from agentos_obs.tracing import CostStatus, SpanKind, SpanStatus
from replay_server import ReplayServer
from usage_checks import Recorder, assert_estimated, assert_exact

HELLO = [{"role": "user", "content": "Hello!"}]
JOKE = [{"role": "user", "content": "Tell me a funny joke, a one-liner."}]
FRANCE = [{"role": "user", "content": "What's the capital of France?"}]


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    obs_openai.instrument(recorder.tracer)
    obs_anthropic.instrument(recorder.tracer)
    yield recorder
    obs_openai.uninstrument()
    obs_anthropic.uninstrument()


@pytest.fixture
def oai(replay: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=replay.openai_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def ant(replay: ReplayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=replay.anthropic_url, api_key="sk-ant-x", max_retries=0)


@pytest.fixture
def stream_usage() -> Iterator[None]:
    previous = set_usage_options(stream_usage=True)
    yield
    set_usage_options(stream_usage=previous.stream_usage)


# -- direct SDK calls: spans of its own ---------------------------------------------------------


def test_direct_chat_and_embeddings_priced_exactly(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    oai.embeddings.create(model="text-embedding-ada-002", input="hello world")
    oai.embeddings.create(model="text-embedding-3-small", input=["first text", "second text"])

    kinds = [c.kind for c in rec.calls]
    assert kinds == [SpanKind.LLM, SpanKind.EMBEDDING, SpanKind.EMBEDDING]
    assert all(c.attributes[attr.LLM_USAGE_SOURCE] == "sdk" for c in rec.calls)
    assert_exact(rec.calls, replay.served)


def test_direct_stream_without_usage_estimated_with_usage_exact(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-3.5-turbo", messages=JOKE, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"  # the app's stream, unchanged
    assert_estimated(rec.calls, replay.served)

    rec.traces.clear()
    replay.reset()
    with oai.chat.completions.create(
        model="gpt-3.5-turbo", messages=JOKE, stream=True, stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
    assert_exact(rec.calls, replay.served)


def test_direct_async_calls(replay: ReplayServer, rec: Recorder) -> None:
    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=replay.openai_url, api_key="sk-x", max_retries=0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
        await client.embeddings.create(model="text-embedding-ada-002", input="hello world")
        claude = anthropic.AsyncAnthropic(
            base_url=replay.anthropic_url, api_key="sk-ant-x", max_retries=0
        )
        await claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE)
        async with claude.messages.stream(
            model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE
        ) as events:
            await events.get_final_message()

    asyncio.run(main())
    assert_exact(rec.calls, replay.served)


def test_anthropic_create_stream_and_stream_helper(
    replay: ReplayServer, rec: Recorder, ant: anthropic.Anthropic
) -> None:
    ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE)
    for _ in ant.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE, stream=True
    ):
        pass
    with ant.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE) as s:
        assert "Paris" in s.get_final_text()

    assert [c.provider for c in rec.calls] == ["anthropic"] * 3
    assert_exact(rec.calls, replay.served)


def test_anthropic_tool_use_stream_reads_the_calls(
    replay: ReplayServer, ant: anthropic.Anthropic
) -> None:
    rec = Recorder(capture_content=True)
    obs_anthropic.instrument(rec.tracer)
    try:
        import json
        from pathlib import Path

        recorded = json.loads(Path("tests/cassettes/anthropic_tool_use.json").read_text())
        request = recorded["interactions"][1]["request"]
        for _ in ant.messages.create(**request):
            pass
    finally:
        obs_anthropic.uninstrument()
    (call,) = rec.calls
    output = json.loads(call.attributes[attr.LLM_OUTPUT_MESSAGES])
    assert [c["name"] for c in output["tool_calls"]] == ["get_weather", "get_time"]
    assert output["tool_calls"][1]["arguments"] == {"timezone": "America/New_York"}
    assert [t["name"] for t in json.loads(call.attributes[attr.LLM_TOOLS])] == [
        "get_weather",
        "get_time",
    ]
    assert_exact(rec.calls, replay.served)


def test_stream_time_to_first_token_on_its_own_span(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    replay.first_delta_delay_s = 0.25
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    ttft = rec.ttft_ms(rec.calls[0])
    assert ttft is not None and ttft >= 240


def test_failed_request_is_a_failed_call_and_the_error_passes_through(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    replay.fail_next(500, "upstream down")
    with pytest.raises(openai.InternalServerError, match="upstream down"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    (call,) = rec.calls
    assert call.status is SpanStatus.ERROR and call.failed
    assert call.cost_status is CostStatus.NO_USAGE


def test_abandoned_stream_ends_its_span_cancelled(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    (trace,) = rec.traces
    assert trace.spans[0].status is SpanStatus.CANCELLED


class RefuseModelCalls:
    """Stands for a budget in raise mode: refuses every LLM span from its start."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_start(self, span: Any) -> None:
        if span.kind is SpanKind.LLM:
            self.seen.append(span.attributes.get(attr.LLM_REQUEST_MODEL))
            raise BudgetExceeded("over budget")


def test_a_budget_refuses_the_call_before_it_is_sent(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    refuse = RefuseModelCalls()
    rec.tracer.add_span_processor(refuse)
    with pytest.raises(BudgetExceeded):
        oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(BudgetExceeded):
        list(oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    with pytest.raises(BudgetExceeded):
        ant.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=FRANCE)
    assert replay.requests == []  # nothing left the process
    assert refuse.seen == ["gpt-4o-mini", "gpt-4o-mini", "claude-sonnet-4-6"]  # model known
    assert [r.status for r in rec.records] == [SpanStatus.ERROR] * 3


# -- inside frameworks: on their spans, counted once --------------------------------------------


def test_langchain_chat_counted_once(replay: ReplayServer, rec: Recorder) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    handler = AgentOSCallbackHandler(tracer=rec.tracer)
    config: Any = {"callbacks": [handler]}
    ChatOpenAI(model="gpt-4o-mini", base_url=replay.openai_url, api_key="sk-x").invoke(
        "Hello!", config=config
    )
    claude = ChatAnthropic(
        model="claude-sonnet-4-6",
        base_url=replay.anthropic_url,
        api_key="sk-ant-x",
        max_tokens=1024,
    )
    claude.invoke("What's the capital of France?", config=config)  # through with_raw_response
    list(claude.stream("Why is the sky blue? Answer in 5 words or less", config=config))

    assert [r.name for r in rec.records] == ["ChatOpenAI", "ChatAnthropic", "ChatAnthropic"]
    assert all(c.attributes[attr.LLM_USAGE_SOURCE] == "sdk" for c in rec.calls)
    assert_exact(rec.calls, replay.served)


def test_langchain_embeddings_get_a_span_under_the_run_that_embeds(
    replay: ReplayServer, rec: Recorder
) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="text-embedding-ada-002",
        base_url=replay.openai_url,
        api_key="sk-x",
        check_embedding_ctx_length=False,  # else it tokenizes with tiktoken (a download)
    )
    step = RunnableLambda(lambda texts: embeddings.embed_documents(texts), name="embed_step")
    step.invoke(
        ["hello", "world", "test"],
        config={"callbacks": [AgentOSCallbackHandler(tracer=rec.tracer)]},
    )

    (trace,) = rec.traces
    parent = next(r for r in trace.spans if r.name == "embed_step")
    (call,) = rec.calls
    assert call.kind is SpanKind.EMBEDDING and call.parent_id == parent.span_id
    assert call.input_tokens == 3
    assert_exact(rec.calls, replay.served)


def test_llama_index_embeddings_usage_lands_on_the_embedding_span(
    replay: ReplayServer, rec: Recorder
) -> None:
    from llama_index.embeddings.openai import OpenAIEmbedding

    handler = AgentOSSpanHandler(tracer=rec.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)
    try:
        model = OpenAIEmbedding(
            model="text-embedding-3-small", api_base=replay.openai_url, api_key="sk-x"
        )
        model.get_text_embedding_batch(["first text", "second text"])
    finally:
        dispatcher.span_handlers.remove(handler)
        dispatcher.event_handlers.remove(handler.event_handler)
    (call,) = rec.calls
    assert call.name == "OpenAIEmbedding.get_text_embedding_batch"
    assert call.provider == "openai"
    assert_exact(rec.calls, replay.served)


def test_llama_index_embedding_batches_add_up(replay: ReplayServer, rec: Recorder) -> None:
    from llama_index.embeddings.openai import OpenAIEmbedding

    for text, tokens in (("alpha", 1), ("beta gamma", 2), ("delta", 1)):
        replay.add(
            "openai.embeddings",
            {"model": "text-embedding-3-small", "input": [text]},
            {
                "status": 200,
                "json": {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                    "model": "text-embedding-3-small",
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            },
        )
    handler = AgentOSSpanHandler(tracer=rec.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)
    try:
        model = OpenAIEmbedding(
            model="text-embedding-3-small",
            api_base=replay.openai_url,
            api_key="sk-x",
            embed_batch_size=1,
        )
        model.get_text_embedding_batch(["alpha", "beta gamma", "delta"])
    finally:
        dispatcher.span_handlers.remove(handler)
        dispatcher.event_handlers.remove(handler.event_handler)
    assert len(replay.served) == 3
    (call,) = rec.calls
    assert call.input_tokens == 4
    assert call.cost_usd == pytest.approx(sum(s.catalogue_cost() for s in replay.served))


def test_llama_index_chat_counted_once(replay: ReplayServer, rec: Recorder) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI

    handler = AgentOSSpanHandler(tracer=rec.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)
    try:
        llm = OpenAI(model="gpt-4o-mini", api_base=replay.openai_url, api_key="sk-x")
        llm.chat([ChatMessage(role="user", content="Hello!")])
        list(llm.stream_chat([ChatMessage(role="user", content="Hello!")]))
    finally:
        dispatcher.span_handlers.remove(handler)
        dispatcher.event_handlers.remove(handler.event_handler)
    exact, estimated = rec.calls
    assert_exact([exact], replay.served[:1])
    assert_estimated([estimated], replay.served[1:])  # the stream asked for no usage


# -- the stream-usage opt-in ----------------------------------------------------------------------


def test_stream_usage_opt_in_asks_framework_streams_for_usage(
    replay: ReplayServer, rec: Recorder, stream_usage: None, oai: openai.OpenAI
) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-3.5-turbo", base_url=replay.openai_url, api_key="sk-x")
    text = "".join(
        str(c.content)
        for c in model.stream(
            JOKE[0]["content"], config={"callbacks": [AgentOSCallbackHandler(tracer=rec.tracer)]}
        )
    )
    assert text.startswith("Why couldn't")
    assert replay.requests[0]["body"]["stream_options"] == {"include_usage": True}
    assert_exact(rec.calls, replay.served)

    # the app's own streaming call is left as it was
    rec.traces.clear()
    list(oai.chat.completions.create(model="gpt-3.5-turbo", messages=JOKE, stream=True))
    assert "stream_options" not in replay.requests[1]["body"]
    assert rec.calls[0].cost_status is CostStatus.ESTIMATED


def test_stream_usage_opt_in_makes_a_function_agent_exact(
    replay: ReplayServer, rec: Recorder, stream_usage: None
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    def get_weather(city: str) -> str:
        return "It's sunny in Paris."

    handler = AgentOSSpanHandler(tracer=rec.tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(handler)
    dispatcher.add_event_handler(handler.event_handler)
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather, name="get_weather", description="")],
        llm=OpenAI(model="gpt-4o-mini", api_base=replay.openai_url, api_key="sk-x"),
    )

    async def main() -> Any:
        return await agent.run("What's the weather in Paris?")

    try:
        asyncio.run(main())
    finally:
        dispatcher.span_handlers.remove(handler)
        dispatcher.event_handlers.remove(handler.event_handler)
    assert all(s.usage_sent for s in replay.served)
    assert_exact(rec.calls, replay.served)


# -- lifecycle and the guard ----------------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_restores() -> None:
    original = openai.resources.chat.completions.Completions.create
    obs_openai.instrument()
    obs_openai.instrument()
    wrapped = openai.resources.chat.completions.Completions.create
    assert wrapped is not original and wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert (
        obs_openai.layer().patched.count(
            "openai.resources.chat.completions.completions.Completions.create"
        )
        == 1
    )
    obs_openai.uninstrument()
    assert openai.resources.chat.completions.Completions.create is original
    assert not obs_openai.instrumented()


def test_a_kept_wrapper_passes_calls_through_after_uninstrument(
    replay: ReplayServer, oai: openai.OpenAI
) -> None:
    rec = Recorder()
    obs_openai.instrument(rec.tracer)
    raw = oai.chat.completions.with_raw_response  # binds the wrapped create
    obs_openai.uninstrument()
    raw.create(model="gpt-4o-mini", messages=HELLO).parse()
    assert rec.traces == []


def test_a_failure_of_ours_never_reaches_the_app(
    replay: ReplayServer,
    rec: Recorder,
    oai: openai.OpenAI,
    lenient: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agentos_obs.integrations.openai._patch as patch

    def broken(_: Any) -> Any:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(patch, "chat_outcome", broken)
    obs_openai.uninstrument()
    obs_openai.instrument(rec.tracer)  # re-wrap with the broken reader
    answer = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "Hello! How can I assist you today?"
    assert _guard.failure_counts()


def test_package_level_instrument_turns_the_sdk_layers_on_only_when_asked() -> None:
    import agentos_obs

    active = agentos_obs.instrument(langchain=False, llama_index=False)
    try:
        assert active["openai"] is False and not obs_openai.instrumented()
        active = agentos_obs.instrument(
            langchain=False, llama_index=False, openai=True, anthropic=True
        )
        assert active["openai"] is True and obs_openai.instrumented()
        assert obs_anthropic.instrumented()
    finally:
        agentos_obs.uninstrument()
    assert not obs_openai.instrumented() and not obs_anthropic.instrumented()
    assert openai.resources.embeddings.Embeddings.create.__name__ == "create"
    assert not hasattr(openai.resources.embeddings.Embeddings.create, "__agentos_obs__")


def test_a_direct_stream_that_breaks_off_is_failed_and_estimated(
    replay: ReplayServer, rec: Recorder, oai: openai.OpenAI
) -> None:
    replay.break_stream_after = 6
    with pytest.raises(ValueError):
        for _ in oai.chat.completions.create(model="gpt-3.5-turbo", messages=JOKE, stream=True):
            pass
    (call,) = rec.calls
    assert call.status is SpanStatus.ERROR and call.cost_status is CostStatus.ESTIMATED
    assert (call.input_tokens, call.output_tokens) == (18, 5)
