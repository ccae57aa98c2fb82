"""Offline LangChain fakes that behave like real provider integrations, usage included.

Built on LangChain's own base classes (``BaseChatModel``, ``BaseLLM``, ``BaseRetriever``) so
every callback LangChain fires for a real model fires here too; only the network is missing.
Each fake reports token usage the way a provider integration does:

* ``FakeUsageChatModel`` — ``AIMessage.usage_metadata`` (modern integrations), or only
  ``llm_output["token_usage"]`` (older OpenAI-style integrations) with ``usage_in="llm_output"``;
  when streaming, text chunks then a final empty chunk carrying ``usage_metadata``.
* ``FakeToolCallingChatModel`` — asks for a tool call until it sees a tool result, then answers.
* ``FakeUsageLLM`` — a completion (non-chat) model with usage in ``llm_output["token_usage"]``.
* ``KeywordRetriever`` — returns the documents whose text shares a word with the query.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, BaseLLM, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from agentos_obs.pricing import PriceCatalog
from agentos_obs.tracing import Span, Trace, Tracer, TracerConfig

# USD per million tokens: round numbers so tests can assert exact costs.
PRICES = {
    "gpt-4o-mini": {"input": 1.0, "output": 2.0, "cache_read": 0.5},
    "gpt-4o-mini-2024-07-18": {"input": 1.0, "output": 2.0, "cache_read": 0.5},
    "gpt-3.5-turbo-instruct": {"input": 1.5, "output": 2.0},
}


class Collector:
    """A tracer with known prices whose finished traces land in ``traces``."""

    def __init__(self, **config: Any) -> None:
        self.tracer = Tracer(config=TracerConfig(**config), pricing=PriceCatalog(overrides=PRICES))
        self.traces: list[Trace] = []
        self.tracer.add_exporter(self.traces.append)

    @property
    def trace(self) -> Trace:
        """The one trace exported so far (fails if there are zero or several)."""
        assert len(self.traces) == 1, f"expected one trace, got {len(self.traces)}"
        return self.traces[0]

    def spans(self, name: str) -> list[Span]:
        return [s for t in self.traces for s in t.spans if s.name == name]

    def span(self, name: str) -> Span:
        found = self.spans(name)
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}"
        return found[0]


Tree = tuple[str, tuple[Any, ...]]


def span_tree(span: Span) -> Tree:
    """``(name, children)`` with children sorted, to compare with LangChain's run tree."""
    return (span.name, tuple(sorted(span_tree(c) for c in span.children)))


def run_tree(run: Any) -> Tree:
    """The same shape from a LangChain ``Run`` (RunCollectorCallbackHandler)."""
    return (run.name, tuple(sorted(run_tree(c) for c in run.child_runs)))


__all__ = [
    "PRICES",
    "Collector",
    "FailingChatModel",
    "FakeToolCallingChatModel",
    "FakeUsageChatModel",
    "FakeUsageLLM",
    "KeywordRetriever",
    "ModelFailure",
    "run_tree",
    "span_tree",
    "usage_metadata",
]


class ModelFailure(RuntimeError):
    """What the failing fakes raise (a distinct type so tests can assert identity)."""


def usage_metadata(
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read: int = 0,
    cache_creation: int = 0,
    reasoning: int = 0,
) -> UsageMetadata:
    """A LangChain ``usage_metadata`` dict (input already includes cache tokens)."""
    meta: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    if cache_read or cache_creation:
        meta["input_token_details"] = {"cache_read": cache_read, "cache_creation": cache_creation}
    if reasoning:
        meta["output_token_details"] = {"reasoning": reasoning}
    return UsageMetadata(**meta)  # type: ignore[typeddict-item]


class FakeUsageChatModel(BaseChatModel):
    """A chat model answering from a list of replies (cycled) and reporting usage.

    ``usage_in``: ``"message"`` puts usage on ``AIMessage.usage_metadata``;
    ``"llm_output"`` only in ``llm_output["token_usage"]`` (OpenAI-style); ``"none"`` nowhere.
    ``delay_s`` sleeps (or awaits) before answering, to make concurrency real.
    """

    replies: list[str] = Field(default_factory=lambda: ["hello world"])
    model_name: str = "gpt-4o-mini"
    provider: str = "openai"
    resolved_model: str | None = None  # what the provider says answered (e.g. a dated id)
    input_tokens: int = 12
    output_tokens: int = 5
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_in: Literal["message", "llm_output", "none"] = "message"
    finish_reason: str = "stop"
    delay_s: float = 0.0
    api_key: str = "sk-test-0123456789abcdefghijklmnop"  # must never be recorded
    _counter: Iterator[int] = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "fake-usage-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "api_key": self.api_key}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    # -- replies -----------------------------------------------------------------------
    def _next_text(self, messages: list[BaseMessage]) -> str:
        with self._lock:
            index = next(self._counter)
        return self.replies[index % len(self.replies)]

    def _usage(self) -> UsageMetadata:
        return usage_metadata(
            self.input_tokens,
            self.output_tokens,
            cache_read=self.cache_read_tokens,
            cache_creation=self.cache_write_tokens,
            reasoning=self.reasoning_tokens,
        )

    def _response_metadata(self) -> dict[str, Any]:
        return {
            "model_name": self.resolved_model or self.model_name,
            "finish_reason": self.finish_reason,
        }

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(content=self._next_text(messages))

    def _result(self, message: AIMessage) -> ChatResult:
        message.response_metadata = {**self._response_metadata(), **message.response_metadata}
        llm_output: dict[str, Any] | None = None
        if self.usage_in == "message":
            message.usage_metadata = self._usage()
        elif self.usage_in == "llm_output":
            llm_output = {
                "token_usage": {
                    "prompt_tokens": self.input_tokens,
                    "completion_tokens": self.output_tokens,
                    "total_tokens": self.input_tokens + self.output_tokens,
                    "prompt_tokens_details": {"cached_tokens": self.cache_read_tokens},
                },
                "model_name": self.resolved_model or self.model_name,
            }
        generation = ChatGeneration(
            message=message, generation_info={"finish_reason": self.finish_reason}
        )
        return ChatResult(generations=[generation], llm_output=llm_output)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._result(self._reply(messages))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._result(self._reply(messages))

    # -- streaming: text chunks, then a final chunk with usage (as OpenAI's stream_usage) --
    def _chunks(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        message = self._reply(messages)
        text = message.content if isinstance(message.content, str) else ""
        words = text.split(" ")
        chunks = [
            ChatGenerationChunk(message=AIMessageChunk(content=w if i == 0 else " " + w))
            for i, w in enumerate(words)
        ]
        final = AIMessageChunk(content="", response_metadata=self._response_metadata())
        if self.usage_in == "message":
            final.usage_metadata = self._usage()
        final.chunk_position = "last"
        chunks.append(ChatGenerationChunk(message=final))
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if self.delay_s:
                time.sleep(self.delay_s)
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


class FakeToolCallingChatModel(FakeUsageChatModel):
    """Calls the first bound tool with ``tool_args`` until it sees a tool result, then
    answers with that result. Deterministic whatever the concurrency."""

    tool_args: dict[str, Any] = Field(default_factory=lambda: {"city": "Paris"})
    answer_prefix: str = "The answer is: "

    def _reply_with_tools(self, messages: list[BaseMessage], tools: list[Any]) -> AIMessage:
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage) or not tools:
            content = last.content if isinstance(last, ToolMessage) else "no tools"
            return AIMessage(content=f"{self.answer_prefix}{content}")
        name = tools[0]["function"]["name"]
        call_id = f"call_{sum(isinstance(m, ToolMessage) for m in messages)}"
        return AIMessage(
            content="",
            tool_calls=[{"name": name, "args": dict(self.tool_args), "id": call_id}],
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(self._reply_with_tools(messages, kwargs.get("tools") or []))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, None, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError  # LangChain falls back to _generate

    def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        raise NotImplementedError


class FailingChatModel(FakeUsageChatModel):
    """Raises ``error`` (a ``ModelFailure`` by default) from every call; when streaming,
    after ``fail_after_chunks`` chunks."""

    error: BaseException = Field(default_factory=lambda: ModelFailure("provider is down"))
    fail_after_chunks: int = 0

    model_config = {"arbitrary_types_allowed": True}

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise self.error

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise self.error

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(messages)):
            if i >= self.fail_after_chunks:
                raise self.error
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        raise self.error


class FakeUsageLLM(BaseLLM):
    """A completion model with usage only in ``llm_output["token_usage"]`` (legacy shape)."""

    reply: str = "a completion"
    model_name: str = "gpt-3.5-turbo-instruct"
    prompt_tokens: int = 7
    completion_tokens: int = 3

    @property
    def _llm_type(self) -> str:
        return "fake-usage-llm"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return LLMResult(
            generations=[
                [Generation(text=self.reply, generation_info={"finish_reason": "length"})]
                for _ in prompts
            ],
            llm_output={
                "token_usage": {
                    "prompt_tokens": self.prompt_tokens * len(prompts),
                    "completion_tokens": self.completion_tokens * len(prompts),
                    "total_tokens": (self.prompt_tokens + self.completion_tokens) * len(prompts),
                },
                "model_name": self.model_name,
            },
        )


class KeywordRetriever(BaseRetriever):
    """Returns the documents that share a word with the query (at most ``k``)."""

    documents: list[Document] = Field(default_factory=list)
    k: int = 4

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().split())
        hits = [d for d in self.documents if words & set(d.page_content.lower().split())]
        return hits[: self.k]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._get_relevant_documents(query, run_manager=run_manager.get_sync())
