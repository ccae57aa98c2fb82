"""A traced LlamaIndex FunctionAgent calling a tool, fully offline.

Run: python examples/llama_index_agent.py

The agent's LLM is LlamaIndex's MockFunctionCallingLLM (it calls every tool it is given, then
answers), extended to report OpenAI-shaped token usage in ``ChatResponse.raw``. The trace shows
the agent run, its workflow steps, each LLM call with tokens and cost, and the tool span
named after the tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata
from llama_index.core.llms import MockFunctionCallingLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.tools import FunctionTool

import agentos_obs as obs


class OfflineToolLLM(MockFunctionCallingLLM):
    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            model_name=self.model, is_chat_model=True, is_function_calling_model=True
        )

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        answer = self._get_response_generator()(messages, **kwargs)
        usage = {"prompt_tokens": 230, "completion_tokens": 18, "total_tokens": 248}

        async def gen() -> AsyncIterator[ChatResponse]:
            yield ChatResponse(
                message=answer,
                delta=answer.content or "",
                raw={"model": self.model, "usage": usage},
            )

        return gen()


def multiply(a: int = 6, b: int = 7) -> int:
    """Multiply two integers."""
    return a * b


def print_trace(trace: obs.Trace) -> None:
    totals = trace.usage_totals()
    print(
        f"trace {trace.name}: {len(trace.spans)} spans, {totals['llm_calls']} LLM calls, "
        f"{totals['input_tokens']} in + {totals['output_tokens']} out tokens, "
        f"${totals['cost_usd']:.6f}"
    )

    def walk(span: obs.Span, depth: int) -> None:
        line = f"{'  ' * depth}{span.name} [{span.kind.value}]"
        if span.counts_usage:
            line += f"  {span.input_tokens}+{span.output_tokens} tokens ${span.cost_usd:.6f}"
        print(line)
        for child in span.children:
            walk(child, depth + 1)

    assert trace.root_span is not None
    walk(trace.root_span, 1)


async def main() -> None:
    tracer = obs.Tracer("llama-index-agent-example")
    tracer.add_exporter(print_trace, sync=True)
    obs.instrument(tracer=tracer, langchain=False, llama_index=True)
    try:
        agent = FunctionAgent(
            name="calculator",
            tools=[FunctionTool.from_defaults(fn=multiply)],
            llm=OfflineToolLLM(),
        )
        result = await agent.run("What is six times seven?")
        print(f"agent answered: {result}")
    finally:
        obs.uninstrument()


if __name__ == "__main__":
    asyncio.run(main())
