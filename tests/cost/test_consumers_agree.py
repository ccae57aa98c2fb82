"""CostAnalytics, BudgetAlert and the dashboard read the same sealed records, so they agree:
on agents (``agent.name`` over the span's name) and on calls (a failed call is a call).
With real LlamaIndex and LangChain objects, offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import agentos_obs._internal.guard as _guard
from agentos_obs.cost import BudgetAlert, CostAnalytics
from agentos_obs.dashboard import ObservabilityDashboard
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.pricing import PriceCatalog
from agentos_obs.testing import FakeChatModel
from agentos_obs.tracing import SpanKind, Tracer, TraceRecord
from lc_fakes import PRICES, ModelFailure


class Consumers:
    """One tracer feeding every in-process consumer of usage."""

    def __init__(self) -> None:
        self.tracer = Tracer(pricing=PriceCatalog(overrides=PRICES))
        self.cost = CostAnalytics()
        self.by_agent = BudgetAlert(budget_limit=100.0, key="agent")
        self.by_model = BudgetAlert(budget_limit=100.0, key="model")
        self.dashboard = ObservabilityDashboard(self.tracer)
        self.traces: list[TraceRecord] = []
        for processor in (self.cost, self.by_agent, self.by_model):
            self.tracer.add_span_processor(processor)
        self.tracer.add_exporter(self.dashboard.record_trace)
        self.tracer.add_exporter(self.traces.append, sync=True)

    def calls(self) -> dict[str, int]:
        summary = self.dashboard.get_summary()
        return {
            "cost_analytics": self.cost.summary()["calls"],
            "dashboard": summary["llm_calls"],
            "trace_rollups": sum(t.rollup.llm_calls for t in self.traces),
        }


@pytest.fixture
def consumers() -> Consumers:
    return Consumers()


@pytest.fixture
def llama_index(consumers: Consumers) -> Iterator[None]:
    from agentos_obs.integrations.llama_index import instrument, uninstrument

    instrument(tracer=consumers.tracer)
    yield
    uninstrument()
    assert _guard.failure_counts() == {}  # LlamaIndex swallows handler errors: none here


@pytest.mark.usefixtures("llama_index")
async def test_function_agent_named_planner_is_planner_everywhere(consumers: Consumers) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    from li_fakes import UsageFunctionCallingLLM, make_tool

    agent = FunctionAgent(name="planner", tools=[make_tool("adder")], llm=UsageFunctionCallingLLM())
    await agent.run("add two and three")

    (trace,) = consumers.traces
    assert trace.root_span is not None
    assert trace.root_span.kind is SpanKind.AGENT
    assert trace.root_span.name == "FunctionAgent.run"  # the span's name is the method
    summary = consumers.dashboard.get_summary()
    assert set(summary["by_agent"]) == {"planner"}
    assert set(consumers.cost.summary()["by_agent"]) == {"planner"}
    assert [s.key_value for s in consumers.by_agent.status()] == ["planner"]
    calls = summary["by_agent"]["planner"]["llm_calls"]
    assert calls == 2  # one call asks for the tool, one answers
    assert consumers.cost.summary()["by_agent"]["planner"]["llm_calls"] == calls
    spend = consumers.by_agent.status_for("planner").spend
    assert spend == pytest.approx(consumers.cost.summary()["by_agent"]["planner"]["cost_usd"])


def test_one_good_and_one_failed_langchain_call_are_two_calls(consumers: Consumers) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    handler = AgentOSCallbackHandler(tracer=consumers.tracer)
    config: Any = {"callbacks": [handler]}
    (prompt | FakeChatModel() | StrOutputParser()).invoke({"q": "hi"}, config=config)
    with pytest.raises(ModelFailure):
        failing = FakeChatModel(error=ModelFailure("provider is down"))
        (prompt | failing | StrOutputParser()).invoke({"q": "hi"}, config=config)

    assert consumers.calls() == {"cost_analytics": 2, "dashboard": 2, "trace_rollups": 2}
    summary = consumers.dashboard.get_summary()
    cost = consumers.cost.summary()
    assert summary["no_usage_llm_calls"] == cost["no_usage_calls"] == 1
    assert summary["cost_complete"] is cost["cost_complete"] is False
    assert summary["cost"]["total_usd"] == pytest.approx(cost["total_cost"])
    assert cost["total_cost"] > 0
    assert summary["tokens"]["total"] == cost["total_tokens"] > 0
    model_spend = sum(s.spend for s in consumers.by_model.status())
    assert model_spend == pytest.approx(cost["total_cost"])
    dash_models = {k: v["llm_calls"] for k, v in summary["by_model"].items()}
    cost_models = {k: v["llm_calls"] for k, v in cost["by_model"].items()}
    assert dash_models == cost_models
    assert sum(dash_models.values()) == 2
