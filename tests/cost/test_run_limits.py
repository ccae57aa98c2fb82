"""Per-run limits against runaway agents: a LangGraph agent that never stops calling its tool
is stopped at the next LLM call once its run has used N calls, T tokens or $X (raise mode),
or only flagged (alert mode); the trace shows where and why."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import agentos_obs.attributes as attr
from agentos_obs.cost import BUDGET_EXCEEDED, BUDGET_EXCEEDED_REASON, BudgetAlert
from agentos_obs.errors import BudgetExceeded
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.pricing import PriceCatalog
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, SpanRecord, SpanStatus, TraceRecord
from conftest import traced
from lc_fakes import PRICES, FakeToolCallingChatModel

# gpt-4o-mini at $1/M input, $2/M output: 8000 + 1000 tokens = $0.01 a call.
PER_CALL = {"input_tokens": 8000, "output_tokens": 1000}


class LoopingChatModel(FakeToolCallingChatModel):
    """A runaway agent's model: asks for the tool again after every result, forever."""

    def _planned_calls(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> list[ToolCall]:
        name = (tools or [{"function": {"name": "weather"}}])[0]["function"]["name"]
        n = sum(isinstance(m, ToolMessage) for m in messages)
        return [ToolCall(name=name, args=dict(self.tool_args), id=f"c{n}", type="tool_call")]


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def looping_agent() -> Any:
    model = LoopingChatModel(**PER_CALL).bind_tools([weather])

    def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"], config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def llm_spans(trace: TraceRecord) -> list[SpanRecord]:
    return [s for s in trace.spans if s.kind is SpanKind.LLM]


def ancestors(trace: TraceRecord, span: SpanRecord) -> list[SpanRecord]:
    by_id = {s.span_id: s for s in trace.spans}
    out = []
    parent = by_id.get(span.parent_id or "")
    while parent is not None:
        out.append(parent)
        parent = by_id.get(parent.parent_id or "")
    return out


@pytest.mark.parametrize(
    "limit",
    [{"max_llm_calls": 5}, {"max_tokens": 45_000}, {"budget_limit": 0.05}],
    ids=["calls", "tokens", "usd"],
)
@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
def test_a_looping_langgraph_agent_is_stopped_by_a_per_run_limit(
    limit: dict[str, Any], ledger: str, tmp_path: Path
) -> None:
    tracer, col = traced(pricing=PriceCatalog(overrides=PRICES))
    url = "memory" if ledger == "memory" else f"sqlite:///{tmp_path}/ledger.db"
    budget = BudgetAlert(key="trace", mode="raise", ledger=url, **limit)
    tracer.add_span_processor(budget)
    handler = AgentOSCallbackHandler(tracer=tracer)
    app = looping_agent()

    with pytest.raises(BudgetExceeded) as caught:
        app.invoke(
            {"messages": [("human", "weather in Paris?")]},
            config={"callbacks": [handler], "recursion_limit": 200},
        )
    assert type(caught.value) is BudgetExceeded and caught.value.budget is budget
    trace = col.trace
    assert caught.value.key == trace.trace_id
    calls = llm_spans(trace)
    made, refused = calls[:-1], calls[-1]
    assert len(made) == 5 and all(s.status is SpanStatus.OK for s in made)  # exactly 5 went out
    # Where and why: the refused LLM span, inside the agent node, says which budget and why.
    assert refused.status is SpanStatus.ERROR
    assert refused.attributes[BUDGET_EXCEEDED] == "per-run"
    assert refused.attributes[attr.ERROR_TYPE] == "BudgetExceeded"
    reason = refused.attributes[BUDGET_EXCEEDED_REASON]
    assert reason == str(caught.value) and f"trace={trace.trace_id}" in reason
    assert {"5 of 5 LLM calls", "45,000 of 45,000 tokens", "$0.05 of $0.05 spent"} & {
        reason.split(": ", 1)[1].split(" (")[0]
    }
    assert "agent" in [s.attributes.get(attr.LANGGRAPH_NODE) for s in ancestors(trace, refused)]
    assert trace.attributes[BUDGET_EXCEEDED] == "per-run"  # the whole run is flagged
    assert trace.rollup.cost_usd == pytest.approx(0.05)
    status = budget.status_for(trace.trace_id)
    assert (status.calls, status.tokens, round(status.spend, 9)) == (5, 45_000, 0.05)
    assert budget.counts["refused"] == 1

    # The limit is per run: the next run starts from zero and is stopped at 5 calls again.
    with pytest.raises(BudgetExceeded):
        app.invoke({"messages": [("human", "and Rome?")]}, config={"callbacks": [handler]})
    assert len([s for s in llm_spans(col.traces[1]) if s.status is SpanStatus.OK]) == 5
    budget.close()


async def test_concurrent_runs_each_get_their_own_limit() -> None:
    tracer, col = traced(pricing=PriceCatalog(overrides=PRICES))
    budget = BudgetAlert(key="trace", mode="raise", max_llm_calls=3)
    tracer.add_span_processor(budget)
    handler = AgentOSCallbackHandler(tracer=tracer)
    app = looping_agent()
    results = await asyncio.gather(
        *(
            app.ainvoke({"messages": [("human", f"q{i}")]}, config={"callbacks": [handler]})
            for i in range(8)
        ),
        return_exceptions=True,
    )
    assert all(type(r) is BudgetExceeded for r in results)
    assert len(col.traces) == 8
    for trace in col.traces:
        ok = [s for s in llm_spans(trace) if s.status is SpanStatus.OK]
        assert len(ok) == 3, trace.trace_id
        assert trace.attributes[BUDGET_EXCEEDED] == "per-run"


def test_alert_mode_only_flags_the_run_and_the_store_can_filter_on_it(tmp_path: Path) -> None:
    tracer, col = traced(pricing=PriceCatalog(overrides=PRICES))
    store = SQLiteStore(tmp_path / "traces.db")
    tracer.add_exporter(store)
    budget = BudgetAlert(key="trace", mode="alert", max_llm_calls=4, name="runaway")
    tracer.add_span_processor(budget)
    handler = AgentOSCallbackHandler(tracer=tracer)
    app = looping_agent()
    with pytest.raises(GraphRecursionError):  # nothing stopped it: the graph's own limit did
        app.invoke(
            {"messages": [("human", "q")]}, config={"callbacks": [handler], "recursion_limit": 13}
        )
    # A run that stays within the limit is not flagged.
    calm = FakeToolCallingChatModel(**PER_CALL).bind_tools([weather])
    calm.invoke("hi", config={"callbacks": [handler]})
    runaway, fine = col.traces
    calls = llm_spans(runaway)
    assert len(calls) == 7 and all(s.status is SpanStatus.OK for s in calls)
    assert runaway.attributes[BUDGET_EXCEEDED] == "runaway"
    flagged = [s for s in calls if BUDGET_EXCEEDED in s.attributes]
    assert flagged == calls[4:]  # the calls started past the limit
    assert "4 of 4 LLM calls" in flagged[0].attributes[BUDGET_EXCEEDED_REASON]
    assert BUDGET_EXCEEDED not in fine.attributes
    assert budget.counts["refused"] == 0 and budget.counts["flagged"] >= 4

    assert store.flush()
    store.close()
    conn = sqlite3.connect(tmp_path / "traces.db")
    try:
        rows = conn.execute(
            "SELECT trace_id, json_extract(attributes, '$.\"budget.exceeded\"') FROM traces "
            "WHERE json_extract(attributes, '$.\"budget.exceeded\"') IS NOT NULL"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [(runaway.trace_id, "runaway")]
    assert json.loads(json.dumps(runaway.to_dict()))["attributes"][BUDGET_EXCEEDED] == "runaway"


def test_the_call_that_crosses_the_limit_flags_its_trace_in_alert_mode() -> None:
    tracer, col = traced(pricing=PriceCatalog(overrides=PRICES))
    budget = BudgetAlert(key="user", budget_limit=0.015, name="user-cap")
    tracer.add_span_processor(budget)
    handler = AgentOSCallbackHandler(tracer=tracer)
    model = FakeToolCallingChatModel(**PER_CALL)
    config: RunnableConfig = {"callbacks": [handler], "metadata": {"user_id": "alice"}}
    model.invoke("first", config=config)  # $0.01: under
    model.invoke("second", config=config)  # $0.02 once it ends: this trace crossed it
    model.invoke("third", config=config)  # started over the limit
    first, second, third = col.traces
    assert BUDGET_EXCEEDED not in first.attributes
    assert second.attributes[BUDGET_EXCEEDED] == "user-cap"
    assert third.attributes[BUDGET_EXCEEDED] == "user-cap"
    assert BUDGET_EXCEEDED in llm_spans(third)[0].attributes
    assert BUDGET_EXCEEDED not in llm_spans(second)[0].attributes  # it started under
