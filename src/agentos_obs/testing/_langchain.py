"""Offline LangChain models that behave like provider integrations, usage included.

Built on LangChain's own base classes (``BaseChatModel``, ``BaseRetriever``), so every
callback LangChain fires for a real model fires here too; only the network is missing.
Importing this module imports ``langchain_core`` (``agentos_obs.testing`` loads it only when
one of these names is first used).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal, NamedTuple

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCall, ToolCallChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from agentos_obs.testing._tokens import estimate_tokens

__all__ = ["FakeChatModel", "FakeRetriever"]

ToolPlan = list[tuple[str, dict[str, Any]]]
_RESULT_CHARS = 160  # of each tool result quoted in the answer


class _Reply(NamedTuple):
    message: AIMessage
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


class FakeChatModel(BaseChatModel):
    """A scripted chat model reporting token usage the way provider integrations do.

    **Replies.** The next of ``replies`` (in turn, cycled, safe under concurrency). With tools
    bound (``bind_tools``), a question (the last human message) that ``tool_plan`` maps to
    tool calls, or any question when ``tool_calls`` is set, gets those calls (ids ``call_0``,
    ``call_1``, ... in the conversation); once the tool results are in, the reply is followed
    by the results.

    **Usage.** ``input_tokens`` and ``output_tokens`` per call, or ``None`` to estimate them
    from the text (about four characters per token, tool schemas included). Cache and
    reasoning tokens are inside input and output, as LangChain counts them;
    ``cached_prefix_tokens`` adds prompt caching: from the second call of a conversation on
    (more than two messages), that many prompt tokens are read from cache. ``usage_in``:
    ``"message"`` puts usage on ``AIMessage.usage_metadata`` (current integrations),
    ``"llm_output"`` only in ``llm_output["token_usage"]`` (older OpenAI-style ones),
    ``"none"`` nowhere. ``resolved_model`` is the model the provider says answered (a dated
    id). Streaming yields one chunk per word, then an empty last chunk carrying the usage
    (OpenAI's ``stream_options.include_usage``); tool calls stream as one chunk.

    **Time and failure.** ``latency_s`` is slept (awaited, in async calls) per call; when
    streaming, 40 % before the first chunk and the rest spread over the others. ``error``
    is raised by every call; when streaming, after ``fail_after_chunks`` chunks.

    ``api_key`` sits in the invocation parameters, as a careless integration would put it:
    an observability tool must never record it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[str] = Field(default_factory=lambda: ["hello world"])
    model_name: str = "gpt-4o-mini"
    provider: str = "openai"
    resolved_model: str | None = None
    input_tokens: int | None = 12
    output_tokens: int | None = 5
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prefix_tokens: int = 0
    usage_in: Literal["message", "llm_output", "none"] = "message"
    finish_reason: str = "stop"
    tool_calls: ToolPlan = Field(default_factory=list)
    tool_plan: dict[str, ToolPlan] = Field(default_factory=dict)
    latency_s: float = 0.0
    error: BaseException | None = None
    fail_after_chunks: int = 0
    api_key: str = "sk-fake-0123456789abcdefghijklmnop"
    _counter: Iterator[int] = PrivateAttr(default_factory=itertools.count)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "agentos-fake-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "api_key": self.api_key}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    # -- the script -------------------------------------------------------------------------
    def _next_reply(self) -> str:
        with self._lock:
            index = next(self._counter)
        return self.replies[index % len(self.replies)] if self.replies else ""

    def _planned_calls(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> list[ToolCall]:
        if not tools:
            return []
        asked = next((i for i in range(len(messages) - 1, -1, -1) if _is_human(messages[i])), -1)
        if any(isinstance(m, ToolMessage) for m in messages[asked + 1 :]):
            return []  # the results of this question's calls are in: answer
        question = _text(messages[asked]) if asked >= 0 else ""
        plan = self.tool_plan.get(question, self.tool_calls)
        bound = {tool["function"]["name"] for tool in tools}
        unknown = [name for name, _ in plan if name not in bound]
        if unknown:
            raise ValueError(f"FakeChatModel plans calls to unbound tools {unknown}: {bound}")
        done = sum(isinstance(m, ToolMessage) for m in messages)
        return [
            ToolCall(name=name, args=dict(args), id=f"call_{done + i}", type="tool_call")
            for i, (name, args) in enumerate(plan)
        ]

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> _Reply:
        tools = kwargs.get("tools")
        calls = self._planned_calls(messages, tools)
        if calls:
            message = AIMessage(content="", tool_calls=calls)
        else:
            text = self._next_reply()
            results = [_text(m)[:_RESULT_CHARS] for m in messages if isinstance(m, ToolMessage)]
            message = AIMessage(content=" ".join([text, *results]) if results else text)
        input_tokens = self.input_tokens
        if input_tokens is None:
            input_tokens = sum(estimate_tokens(_text(m)) for m in messages)
            input_tokens += sum(estimate_tokens(str(t)) for t in tools or [])
        output_tokens = self.output_tokens
        if output_tokens is None:
            output_tokens = estimate_tokens(_text(message))
        cache_read = self.cache_read_tokens
        if self.cached_prefix_tokens and len(messages) > 2:
            cache_read += min(self.cached_prefix_tokens, input_tokens)
        message.response_metadata = {
            "model_name": self.resolved_model or self.model_name,
            "finish_reason": "tool_calls" if calls else self.finish_reason,
        }
        if self.usage_in == "message":
            message.usage_metadata = _usage_metadata(
                input_tokens, output_tokens, cache_read, self.cache_write_tokens,
                self.reasoning_tokens,
            )  # fmt: skip
        return _Reply(message, input_tokens, output_tokens, cache_read)

    def _result(self, reply: _Reply) -> ChatResult:
        message = reply.message
        llm_output: dict[str, Any] | None = None
        if self.usage_in == "llm_output":
            llm_output = {
                "token_usage": {
                    "prompt_tokens": reply.input_tokens,
                    "completion_tokens": reply.output_tokens,
                    "total_tokens": reply.input_tokens + reply.output_tokens,
                    "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens},
                },
                "model_name": message.response_metadata["model_name"],
            }
        generation = ChatGeneration(
            message=message,
            generation_info={"finish_reason": message.response_metadata["finish_reason"]},
        )
        return ChatResult(generations=[generation], llm_output=llm_output)

    def _chunks(self, reply: _Reply) -> list[ChatGenerationChunk]:
        message = reply.message
        if message.tool_calls:
            calls = [
                ToolCallChunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ]
            pieces = [AIMessageChunk(content="", tool_call_chunks=calls)]
        else:
            words = str(message.content).split(" ")
            pieces = [AIMessageChunk(content=w if i == 0 else " " + w) for i, w in enumerate(words)]
        last = AIMessageChunk(content="", response_metadata=message.response_metadata)
        if message.usage_metadata is not None:
            last.usage_metadata = message.usage_metadata
        last.chunk_position = "last"
        return [ChatGenerationChunk(message=piece) for piece in (*pieces, last)]

    def _delays(self, count: int) -> list[float]:
        """Real APIs take longest to the first token, then stream quickly."""
        first = self.latency_s * 0.4
        rest = (self.latency_s - first) / max(1, count - 1)
        return [first] + [rest] * (count - 1)

    # -- BaseChatModel ------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.error is not None:
            raise self.error
        return self._result(self._reply(messages, kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.error is not None:
            raise self.error
        return self._result(self._reply(messages, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        chunks = self._chunks(self._reply(messages, kwargs))
        for index, (chunk, delay) in enumerate(zip(chunks, self._delays(len(chunks)), strict=True)):
            if self.error is not None and index >= self.fail_after_chunks:
                raise self.error
            if delay:
                time.sleep(delay)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        if self.error is not None:
            raise self.error

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunks = self._chunks(self._reply(messages, kwargs))
        for index, (chunk, delay) in enumerate(zip(chunks, self._delays(len(chunks)), strict=True)):
            if self.error is not None and index >= self.fail_after_chunks:
                raise self.error
            if delay:
                await asyncio.sleep(delay)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        if self.error is not None:
            raise self.error


class FakeRetriever(BaseRetriever):
    """Keyword search over in-memory documents: those sharing a word (of three letters or
    more, any case, punctuation ignored) with the query, most shared words first, at most
    ``k``. ``latency_s`` is slept (awaited, in async calls) per query."""

    documents: list[Document] = Field(default_factory=list)
    k: int = 4
    latency_s: float = 0.0

    def _search(self, query: str) -> list[Document]:
        wanted = _words(query)
        scored = []
        for position, doc in enumerate(self.documents):
            score = len(wanted & _words(doc.page_content))
            if score:
                scored.append((-score, position, doc))
        scored.sort(key=lambda entry: entry[:2])
        return [doc for _, _, doc in scored[: self.k]]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.latency_s:
            time.sleep(self.latency_s)
        return self._search(query)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self._search(query)


def _is_human(message: BaseMessage) -> bool:
    return isinstance(message, HumanMessage)


def _text(message: BaseMessage) -> str:
    content = message.content
    text = content if isinstance(content, str) else " ".join(str(part) for part in content)
    for call in getattr(message, "tool_calls", None) or []:
        text += f" {call['name']}({call['args']})"
    return text


def _words(text: str) -> set[str]:
    stripped = (word.strip("?.,!;:'\"()[]") for word in text.lower().split())
    return {word for word in stripped if len(word) > 2}


def _usage_metadata(
    input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, reasoning: int
) -> UsageMetadata:
    """LangChain's ``usage_metadata``: input includes cache tokens, output reasoning ones."""
    usage = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    if cache_read or cache_write:
        usage["input_token_details"] = {"cache_read": cache_read, "cache_creation": cache_write}
    if reasoning:
        usage["output_token_details"] = {"reasoning": reasoning}
    return usage
