"""What the LangChain tests share beyond ``agentos_obs.testing``'s fakes (``FakeChatModel``,
``FakeRetriever``): catalogue prices with round numbers, a completion (non-chat) model with
the legacy usage shape, a failure type, and span-tree shapes to compare with LangChain's.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.messages import BaseMessage, ToolCall, ToolMessage
from langchain_core.outputs import Generation, LLMResult
from pydantic import Field

from agentos_obs.pricing import PriceCatalog
from agentos_obs.testing import FakeChatModel
from agentos_obs.tracing import Span

__all__ = ["PRICES", "FakeUsageLLM", "ModelFailure", "catalog", "run_tree", "span_tree"]

# USD per million tokens: round numbers so tests can assert exact costs.
PRICES = {
    "gpt-4o-mini": {"input": 1.0, "output": 2.0, "cache_read": 0.5},
    "gpt-4o-mini-2024-07-18": {"input": 1.0, "output": 2.0, "cache_read": 0.5},
    "gpt-3.5-turbo-instruct": {"input": 1.5, "output": 2.0},
}


def catalog() -> PriceCatalog:
    """The real price catalogue with ``PRICES`` on top (other models keep their real price)."""
    return PriceCatalog(overrides=PRICES)


class ModelFailure(RuntimeError):
    """What failing fakes raise in these tests (a distinct type so tests can assert identity)."""


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


Tree = tuple[str, tuple[Any, ...]]


def span_tree(span: Span) -> Tree:
    """``(name, children)`` with children sorted, to compare with LangChain's run tree."""
    return (span.name, tuple(sorted(span_tree(c) for c in span.children)))


def run_tree(run: Any) -> Tree:
    """The same shape from a LangChain ``Run`` (RunCollectorCallbackHandler)."""
    return (run.name, tuple(sorted(run_tree(c) for c in run.child_runs)))


class FakeToolCallingChatModel(FakeChatModel):
    """Calls the first bound tool with ``tool_args`` until it sees a tool result, then
    answers with that result. Deterministic whatever the concurrency."""

    tool_args: dict[str, Any] = Field(default_factory=lambda: {"city": "Paris"})

    def _planned_calls(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> list[ToolCall]:
        if not tools or (messages and isinstance(messages[-1], ToolMessage)):
            return []
        done = sum(isinstance(m, ToolMessage) for m in messages)
        name = tools[0]["function"]["name"]
        return [ToolCall(name=name, args=dict(self.tool_args), id=f"call_{done}", type="tool_call")]
