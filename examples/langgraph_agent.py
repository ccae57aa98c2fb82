"""Trace a LangGraph agent with tools (langchain's create_agent) with AgentOSCallbackHandler.

Runs offline: the model is LangChain's GenericFakeChatModel following a script — call the
weather tool, call the calculator, then answer — and reporting token usage on each reply.
The trace shows the agent, its graph nodes, each LLM call with tokens and cost, each tool
call with its id; costs roll up to the agent and the trace.

    python examples/langgraph_agent.py
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import LangSmithParams
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, tool

import agentos_obs.attributes as attr
from agentos_obs import Span, SpanKind, Trace, Tracer
from agentos_obs.integrations.langchain import AgentOSCallbackHandler


class ScriptedToolModel(GenericFakeChatModel):
    """Replies from a script; accepts tools like a real tool-calling chat model."""

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        return self

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="openai", ls_model_name="gpt-4o", ls_model_type="chat")


def reply(content: str = "", tool_calls: list[dict[str, Any]] | None = None) -> AIMessage:
    return AIMessage(
        content,
        tool_calls=tool_calls or [],
        usage_metadata={"input_tokens": 350, "output_tokens": 40, "total_tokens": 390},
        response_metadata={"model_name": "gpt-4o-2024-08-06"},
    )


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18°C and sunny in {city}"


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def show(span: Span, depth: int = 0) -> None:
    details = []
    if span.kind is SpanKind.LLM:
        details.append(f"tokens={span.input_tokens}+{span.output_tokens} ${span.cost_usd or 0:.5f}")
    if attr.TOOL_CALL_ID in span.attributes:
        details.append(f"call_id={span.attributes[attr.TOOL_CALL_ID]}")
    if attr.LANGGRAPH_STEP in span.attributes and span.kind is SpanKind.CHAIN:
        details.append(f"step={span.attributes[attr.LANGGRAPH_STEP]}")
    print(f"{'  ' * depth}{span.name} [{span.kind.value}] {' '.join(details)}")
    for child in span.children:
        show(child, depth + 1)


def main() -> None:
    tracer = Tracer("langgraph-example")
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    handler = AgentOSCallbackHandler(tracer=tracer)

    script = iter(
        [
            reply(tool_calls=[{"name": "get_weather", "args": {"city": "Lyon"}, "id": "call_w1"}]),
            reply(tool_calls=[{"name": "add", "args": {"a": 18, "b": 5}, "id": "call_a1"}]),
            reply("It is 18°C in Lyon; 5 degrees warmer would be 23°C."),
        ]
    )
    agent = create_agent(
        ScriptedToolModel(messages=script), [get_weather, add], name="travel_agent"
    )
    question: Any = {
        "messages": [("user", "Weather in Lyon, and what if it were 5 degrees warmer?")]
    }
    config: RunnableConfig = {"callbacks": [handler], "metadata": {"user_id": "bob"}}
    result = agent.invoke(question, config=config)
    print(f"answer: {result['messages'][-1].content}\n")

    trace = traces[0]
    assert trace.root_span is not None
    show(trace.root_span)

    cost_by_node: dict[str, float] = defaultdict(float)
    for span in trace.usage_spans():
        cost_by_node[str(span.attributes.get(attr.LANGGRAPH_NODE))] += span.cost_usd or 0.0
    totals = trace.usage_totals()
    print(
        f"\nagent={trace.root_span.name} user={trace.user_id} llm_calls={totals['llm_calls']} "
        f"tokens={totals['input_tokens']}+{totals['output_tokens']} cost=${totals['cost_usd']:.5f}"
    )
    print("cost by graph node:", {node: round(cost, 6) for node, cost in cost_by_node.items()})


if __name__ == "__main__":
    main()
