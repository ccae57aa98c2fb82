"""Trace an LCEL chain (prompt | chat model | parser) with AgentOSCallbackHandler.

Runs offline: the chat model is LangChain's own GenericFakeChatModel answering with messages
that carry token usage, as a real provider integration's would.

    python examples/langchain_lcel.py
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import LangSmithParams
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentos_obs import Span, Trace, Tracer
from agentos_obs.integrations.langchain import AgentOSCallbackHandler


class OfflineGPT(GenericFakeChatModel):
    """Answers from a script; reports itself as OpenAI's gpt-4o-mini (for pricing)."""

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider="openai", ls_model_name="gpt-4o-mini", ls_model_type="chat"
        )


def answer(text: str, input_tokens: int, output_tokens: int) -> AIMessage:
    return AIMessage(
        text,
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop"},
    )


def show(span: Span, depth: int = 0) -> None:
    indent = "  " * depth
    line = f"{indent}{span.name} [{span.kind.value}] {span.status.value} {span.duration_ms:.2f} ms"
    if span.input_tokens or span.output_tokens:
        cost = "unpriced" if span.cost_usd is None else f"${span.cost_usd:.6f}"
        line += f"  model={span.model_name} tokens={span.input_tokens}+{span.output_tokens} {cost}"
    print(line)
    for child in span.children:
        show(child, depth + 1)


def main() -> None:
    tracer = Tracer("lcel-example")
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    handler = AgentOSCallbackHandler(tracer=tracer)

    model = OfflineGPT(
        messages=iter(
            [
                answer("Paris is the capital of France.", 24, 8),
                answer("Rome is the capital of Italy.", 24, 8),
            ]
        )
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in one sentence."), ("human", "What is the capital of {country}?")]
    )
    chain = prompt | model | StrOutputParser()

    for country in ("France", "Italy"):
        reply = chain.invoke(
            {"country": country},
            config={"callbacks": [handler], "metadata": {"user_id": "alice", "session_id": "demo"}},
        )
        print(f"answer: {reply}")

    for trace in traces:
        totals = trace.usage_totals()
        tokens = f"{totals['input_tokens']}+{totals['output_tokens']}"
        print(
            f"\ntrace {trace.trace_id} user={trace.user_id} spans={len(trace.spans)} "
            f"tokens={tokens} cost=${totals['cost_usd']:.6f}"
        )
        assert trace.root_span is not None
        show(trace.root_span)


if __name__ == "__main__":
    main()
