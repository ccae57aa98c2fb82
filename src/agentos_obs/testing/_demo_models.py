"""Offline stand-ins for real models, used by ``agentos-obs demo``.

They behave like the real integrations as far as the tracer can see: real model names (so
the price catalogue gives non-zero costs), token usage where each framework's providers put
it (LangChain ``usage_metadata`` + ``response_metadata["model_name"]``; LlamaIndex
``ChatResponse.raw["usage"]`` in the OpenAI shape), tool calls, streaming with usage on the
last chunk, and a simulated latency so the waterfall has something to show. Replies are
scripted, so every run of the demo gives the same tokens and cost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.utils.function_calling import convert_to_openai_tool

__all__ = [
    "DemoChatModel",
    "DemoRetriever",
    "count_tokens",
    "make_llama_index_llm",
]


def count_tokens(text: str) -> int:
    """A tokenizer stand-in: about four characters per token, like English text on GPT models."""
    return max(1, (len(text) + 3) // 4)


def _message_text(message: BaseMessage) -> str:
    content = message.content
    text = content if isinstance(content, str) else " ".join(str(part) for part in content)
    for call in getattr(message, "tool_calls", None) or []:
        text += f" {call['name']}({call['args']})"
    return text


ToolPlan = Mapping[str, Sequence[tuple[str, dict[str, Any]]]]


class DemoChatModel(BaseChatModel):
    """A scripted chat model that reports usage like a provider's LangChain integration.

    ``tool_plan`` maps a question to the tool calls the model makes when it sees it with
    tools bound; once tool results are in, it answers from them. ``cached_prefix_tokens``
    simulates prompt caching: later calls in a conversation read that many tokens from cache.
    """

    model_name: str = "gpt-4o-mini"
    provider: str = "openai"
    tool_plan: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    canned_answer: str = ""
    cached_prefix_tokens: int = 0
    latency_s: float = 0.0  # simulated time per call, spread over tokens when streaming

    @property
    def _llm_type(self) -> str:
        return "agentos-demo-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    # -- the script -------------------------------------------------------------------------
    def _reply(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> AIMessage:
        last = messages[-1] if messages else HumanMessage("")
        question = next(
            (str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), ""
        )
        planned = self.tool_plan.get(question, []) if tools else []
        if isinstance(last, HumanMessage) and planned:
            calls = [
                {
                    "name": name,
                    "args": args,
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "tool_call",
                }
                for name, args in planned
            ]
            content = ""
        else:
            results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
            calls = []
            content = self.canned_answer or "Here is what I found."
            if results:
                content += " " + " ".join(r[:160] for r in results)
        message = AIMessage(content=content, tool_calls=calls)
        return self._with_usage(message, messages, tools)

    def _with_usage(
        self, message: AIMessage, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> AIMessage:
        prompt_tokens = sum(count_tokens(_message_text(m)) for m in messages)
        prompt_tokens += sum(count_tokens(str(t)) for t in tools or [])
        output_tokens = count_tokens(_message_text(message))
        # A conversation's first call writes the prefix to cache; later calls read it.
        cache_read = min(self.cached_prefix_tokens, prompt_tokens) if len(messages) > 2 else 0
        message.usage_metadata = {
            "input_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
            "input_token_details": {"cache_read": cache_read},
        }
        message.response_metadata = {
            "model_name": self.model_name,
            "finish_reason": "tool_calls" if message.tool_calls else "stop",
        }
        return message

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
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, kwargs.get("tools")))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, kwargs.get("tools"))
        words = str(reply.content).split(" ")
        # Real APIs take longest to the first token, then stream quickly.
        first_delay = self.latency_s * 0.4
        per_token = (self.latency_s * 0.6) / max(1, len(words))
        for index, word in enumerate(words):
            if self.latency_s:
                time.sleep(first_delay if index == 0 else per_token)
            token = word if index == 0 else " " + word
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager is not None:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        # Usage arrives on a final empty chunk, as OpenAI's stream_options include_usage does.
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=reply.usage_metadata,
                response_metadata=reply.response_metadata,
                chunk_position="last",
            )
        )


class DemoRetriever(BaseRetriever):
    """Keyword retriever over a handful of in-memory documents."""

    documents: list[Document]
    k: int = 2
    latency_s: float = 0.0

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.latency_s:
            time.sleep(self.latency_s)
        words = {w.strip("?.,!").lower() for w in query.split()}
        scored = []
        for doc in self.documents:
            text = doc.page_content.lower()
            score = sum(1 for w in words if len(w) > 2 and w in text)
            if score:
                scored.append((score, doc))
        scored.sort(key=lambda pair: -pair[0])
        return [doc for _, doc in scored[: self.k]]


def make_llama_index_llm(model: str, answer: Callable[[str], str], latency_s: float = 0.0) -> Any:
    """A LlamaIndex ``CustomLLM`` answering with ``answer(prompt)`` and OpenAI-shaped usage in
    ``raw`` (where the integration reads it). Built in a function so llama_index is imported
    only when the demo runs."""
    from llama_index.core.base.llms.types import (
        CompletionResponse,
        CompletionResponseGen,
        LLMMetadata,
    )
    from llama_index.core.llms import CustomLLM
    from llama_index.core.llms.callbacks import llm_completion_callback

    class DemoOpenAI(CustomLLM):
        """Named like llama_index.llms.openai.OpenAI: the integration takes the provider
        from the class name."""

        model_name: str = model
        delay_s: float = latency_s

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name=self.model_name, context_window=128_000, num_output=512)

        def _response(self, prompt: str) -> CompletionResponse:
            text = answer(prompt)
            usage = {
                "prompt_tokens": count_tokens(prompt),
                "completion_tokens": count_tokens(text),
                "total_tokens": count_tokens(prompt) + count_tokens(text),
            }
            return CompletionResponse(text=text, raw={"model": self.model_name, "usage": usage})

        @llm_completion_callback()
        def complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponse:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self._response(prompt)

        @llm_completion_callback()
        def stream_complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponseGen:
            full = self._response(prompt)

            def gen() -> CompletionResponseGen:
                text = ""
                words = full.text.split(" ")
                for index, word in enumerate(words):
                    delta = word if index == 0 else " " + word
                    text += delta
                    last = index == len(words) - 1
                    yield CompletionResponse(text=text, delta=delta, raw=full.raw if last else None)

            return gen()

    return DemoOpenAI()
