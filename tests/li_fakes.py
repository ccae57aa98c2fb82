"""What the LlamaIndex tests share beyond ``agentos_obs.testing.FakeOpenAI``: real LlamaIndex
classes (MockFunctionCallingLLM, MockEmbedding), never mocks of the framework, reporting
token usage the way provider integrations do, in ``ChatResponse.raw`` /
``CompletionResponse.raw``, as a dict or as an SDK-like pydantic object, in OpenAI,
Anthropic, Gemini or Groq shape."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    LLMMetadata,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM

try:  # llama-index-core >= 0.14.10
    from llama_index.core.llms import MockFunctionCallingLLM
except ImportError:  # older cores (`make test-lower-bounds` deselects the agent test using it)
    MockFunctionCallingLLM = CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from agentos_obs.testing import FakeOpenAI

__all__ = [
    "ANTHROPIC_USAGE",
    "DOCS",
    "OPENAI_USAGE",
    "UsageFunctionCallingLLM",
    "UsageLLM",
    "check_tree",
    "make_index",
    "make_tool",
    "tree",
]

DOCS = [
    "The capital of France is Paris. It sits on the Seine.",
    "Mount Everest is the highest mountain above sea level.",
    "Python was created by Guido van Rossum and released in 1991.",
]

# What each shape reports per call, and what it means in the AgentOS convention
# (input includes cache tokens).
OPENAI_USAGE = {"input": 120, "output": 30, "cache_read": 20, "reasoning": 5}
ANTHROPIC_USAGE = {"uncached_input": 90, "cache_read": 20, "cache_write": 10, "output": 30}

_ids = itertools.count()


class SDKUsage(BaseModel):
    """An SDK usage object (OpenAI's ``CompletionUsage`` is a pydantic model too)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SDKCompletion(BaseModel):
    id: str
    model: str
    usage: SDKUsage


def openai_raw(model: str) -> dict[str, Any]:
    u = OPENAI_USAGE
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": u["input"],
            "completion_tokens": u["output"],
            "total_tokens": u["input"] + u["output"],
            "prompt_tokens_details": {"cached_tokens": u["cache_read"]},
            "completion_tokens_details": {"reasoning_tokens": u["reasoning"]},
        },
    }


def anthropic_raw(model: str) -> dict[str, Any]:
    u = ANTHROPIC_USAGE
    return {
        "id": f"msg_{next(_ids)}",
        "type": "message",
        "model": model,
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": u["uncached_input"],
            "cache_read_input_tokens": u["cache_read"],
            "cache_creation_input_tokens": u["cache_write"],
            "output_tokens": u["output"],
        },
    }


def gemini_raw(model: str) -> dict[str, Any]:
    u = OPENAI_USAGE
    return {
        "model_version": model,
        "usage_metadata": {
            "prompt_token_count": u["input"],
            "candidates_token_count": u["output"] - u["reasoning"],
            "thoughts_token_count": u["reasoning"],
            "cached_content_token_count": u["cache_read"],
            "total_token_count": u["input"] + u["output"],
        },
    }


def groq_raw(model: str) -> dict[str, Any]:
    """A Groq stream chunk: OpenAI-shaped usage under ``x_groq``."""
    u = OPENAI_USAGE
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "model": model,
        "x_groq": {
            "id": "req_1",
            "usage": {
                "prompt_tokens": u["input"],
                "completion_tokens": u["output"],
                "total_tokens": u["input"] + u["output"],
            },
        },
    }


def sdk_raw(model: str) -> SDKCompletion:
    u = OPENAI_USAGE
    return SDKCompletion(
        id=f"chatcmpl-{next(_ids)}",
        model=model,
        usage=SDKUsage(
            prompt_tokens=u["input"],
            completion_tokens=u["output"],
            total_tokens=u["input"] + u["output"],
        ),
    )


class UsageLLM(FakeOpenAI):
    """``agentos_obs.testing.FakeOpenAI`` answering in other providers' usage shapes too.

    ``shape``: "openai" | "anthropic" | "sdk" (a pydantic object) | "gemini" | "groq" |
    "additional_kwargs" (counts there, raw empty) | "none". Named so that the integration
    finds no provider in the class name (the shapes say which provider answered).
    """

    shape: str = "openai"

    def raw_response(self, prompt: str, text: str) -> Any:
        if self.shape == "openai":
            return openai_raw(self.model)
        if self.shape == "anthropic":
            return anthropic_raw(self.model)
        if self.shape == "sdk":
            return sdk_raw(self.model)
        if self.shape == "gemini":
            return gemini_raw(self.model)
        if self.shape == "groq":
            return groq_raw(self.model)
        return None

    def extra_kwargs(self, prompt: str, text: str) -> dict[str, Any]:
        """Some integrations (llama-index-llms-openai) also copy counts to additional_kwargs."""
        if self.shape != "additional_kwargs":
            return {}
        u = OPENAI_USAGE
        return {
            "prompt_tokens": u["input"],
            "completion_tokens": u["output"],
            "total_tokens": u["input"] + u["output"],
        }


class UsageFunctionCallingLLM(MockFunctionCallingLLM):
    """LlamaIndex's MockFunctionCallingLLM (it calls every tool it is given, then answers)
    with OpenAI-shaped usage in ``raw`` on every response."""

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            model_name=self.model, is_function_calling_model=True, is_chat_model=True
        )

    def _answer(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        answer = self._get_response_generator()(messages, **kwargs)
        assert isinstance(answer, ChatMessage)
        return answer

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        answer = self._answer(messages, **kwargs)
        return ChatResponse(message=answer, delta=answer.content or "", raw=openai_raw(self.model))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        answer = self._answer(messages, **kwargs)

        def gen() -> Iterator[ChatResponse]:
            yield ChatResponse(
                message=answer, delta=answer.content or "", raw=openai_raw(self.model)
            )

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        answer = self._answer(messages, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            yield ChatResponse(
                message=answer, delta=answer.content or "", raw=openai_raw(self.model)
            )

        return gen()


def make_index(docs: Sequence[str] = DOCS) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        [Document(text=t) for t in docs],
        embed_model=MockEmbedding(embed_dim=8, model_name="text-embedding-3-small"),
    )


def add(a: int = 2, b: int = 3) -> int:
    """Add two integers."""
    return a + b


def weather(city: str, api_key: str = "") -> str:
    """Weather of a city (the key is only there to show it is redacted)."""
    return f"{city}: sunny"


def make_tool(name: str = "adder") -> FunctionTool:
    return FunctionTool.from_defaults(fn=add, name=name, description="Add two integers.")


# -- checking trees ------------------------------------------------------------------------


def tree(span: Any, depth: int = 0) -> list[str]:
    """Indented ``name kind`` lines (for readable assertion messages)."""
    lines = ["  " * depth + f"{span.name} {span.kind.value} {span.status.value}"]
    for child in span.children:
        lines.extend(tree(child, depth + 1))
    return lines


def check_tree(trace: Any) -> None:
    """Every span is in the trace, parented inside it, with one root."""
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_id not in ids]
    assert len(roots) == 1, tree(trace.root_span)
    for s in trace.spans:
        assert s.trace_id == trace.trace_id
        assert s.ended, s
