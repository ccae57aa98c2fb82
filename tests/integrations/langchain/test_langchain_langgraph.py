"""LangGraph graphs and agents through AgentOSCallbackHandler (langgraph is a test dependency)."""

from __future__ import annotations

import operator
import warnings
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

import agentos_obs.attributes as attr
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import FakeChatModel, InMemoryExporter
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from lc_fakes import ModelFailure, run_tree, span_tree


@pytest.fixture
def handler(tracer: Tracer) -> AgentOSCallbackHandler:
    return AgentOSCallbackHandler(tracer=tracer)


class Counter(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def two_step_graph(**compile_kwargs: Any) -> Any:
    graph = StateGraph(Counter)
    graph.add_node("add_one", lambda s: {"n": s["n"] + 1, "log": ["add"]})
    graph.add_node("double", lambda s: {"n": s["n"] * 2, "log": ["double"]})
    graph.add_edge(START, "add_one")
    graph.add_edge("add_one", "double")
    graph.add_edge("double", END)
    return graph.compile(**compile_kwargs)


def test_graph_is_an_agent_span_with_node_spans_and_steps(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    result = two_step_graph().invoke({"n": 1, "log": []}, config={"callbacks": [handler]})

    assert result["n"] == 4
    trace = exporter.trace
    root = trace.root_span
    assert root is not None and root.name == "LangGraph" and root.kind is SpanKind.AGENT
    nodes = [
        (
            c.name,
            c.kind,
            c.attributes.get(attr.LANGGRAPH_NODE),
            c.attributes.get(attr.LANGGRAPH_STEP),
        )
        for c in root.children
    ]
    assert nodes == [
        ("add_one", SpanKind.CHAIN, "add_one", 1),
        ("double", SpanKind.CHAIN, "double", 2),
    ]
    assert attr.LANGGRAPH_NODE not in root.attributes
    assert all(s.status is SpanStatus.OK for s in trace.spans)
    assert handler.open_run_count == 0


def test_custom_named_graph_is_still_an_agent(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    graph = two_step_graph().with_config(run_name="counter_agent")
    graph.invoke({"n": 1, "log": []}, config={"callbacks": [handler]})
    root = exporter.trace.root_span
    assert root is not None and root.name == "counter_agent" and root.kind is SpanKind.AGENT


def test_parallel_branches_keep_the_tree(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    graph = StateGraph(Counter)
    for name in ("left", "right", "middle"):
        graph.add_node(name, lambda s, name=name: {"log": [name]})
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    graph.compile().invoke({"n": 0, "log": []}, config={"callbacks": [handler]})

    root = exporter.trace.root_span
    assert root is not None
    assert sorted(c.name for c in root.children) == ["left", "middle", "right"]
    assert {c.attributes[attr.LANGGRAPH_STEP] for c in root.children} == {1}


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


ANSWER = ["The answer is:"]  # followed by the tool's result


def weather_model() -> FakeChatModel:
    """Calls ``weather`` for Paris, then answers with its result."""
    return FakeChatModel(replies=ANSWER, tool_calls=[("weather", {"city": "Paris"})])


def _check_agent_trace(
    exporter: InMemoryExporter, agent_name: str, model_node: str = "model"
) -> None:
    trace = exporter.trace
    root = trace.root_span
    assert root is not None and root.name == agent_name and root.kind is SpanKind.AGENT
    llms = [s for s in trace.spans if s.kind is SpanKind.LLM]
    tools = [s for s in trace.spans if s.kind is SpanKind.TOOL]
    assert len(llms) == 2 and len(tools) == 1
    assert all(s.attributes[attr.LANGGRAPH_NODE] == model_node for s in llms)
    assert tools[0].name == "weather" and tools[0].attributes[attr.TOOL_NAME] == "weather"
    assert tools[0].attributes[attr.TOOL_CALL_ID] == "call_0"
    assert tools[0].attributes[attr.LANGGRAPH_NODE] == "tools"
    # Every LLM and tool span sits below a node span below the agent.
    for span in (*llms, *tools):
        assert span.ancestor(SpanKind.AGENT) is root
    usage = trace.usage_totals()
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 24, 10)
    assert usage["cost_usd"] == pytest.approx((24 * 1.0 + 10 * 2.0) / 1e6)
    assert all(s.status is SpanStatus.OK for s in trace.spans)


def test_create_agent_with_tools(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    from langchain.agents import create_agent

    collector = RunCollectorCallbackHandler()
    agent = create_agent(weather_model(), [weather], name="weather_agent")
    result = agent.invoke(
        {"messages": [("user", "weather in Paris?")]},
        config={
            "callbacks": [handler, collector],
            "metadata": {"user_id": "u-7", "session_id": "chat-1"},
        },
    )
    assert result["messages"][-1].content == "The answer is: sunny in Paris"
    _check_agent_trace(exporter, "weather_agent")
    assert (exporter.trace.user_id, exporter.trace.session_id) == ("u-7", "chat-1")
    root = exporter.trace.root_span
    assert root is not None
    assert span_tree(root) == run_tree(collector.traced_runs[0])  # LangChain's own tree


def test_prebuilt_react_agent(exporter: InMemoryExporter, handler: AgentOSCallbackHandler) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in favour of create_agent
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(weather_model(), [weather])
    agent.invoke({"messages": [("user", "weather in Paris?")]}, config={"callbacks": [handler]})
    _check_agent_trace(exporter, "LangGraph", model_node="agent")


async def test_create_agent_async(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    from langchain.agents import create_agent

    agent = create_agent(weather_model(), [weather], name="weather_agent")
    await agent.ainvoke({"messages": [("user", "weather?")]}, config={"callbacks": [handler]})
    _check_agent_trace(exporter, "weather_agent")


def test_agent_called_as_a_tool_is_a_nested_agent(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    from langchain.agents import create_agent

    inner = create_agent(weather_model(), [weather], name="weather_expert")

    @tool
    def ask_expert(question: str) -> str:
        """Ask the weather expert."""
        out = inner.invoke({"messages": [("user", question)]})
        return str(out["messages"][-1].content)

    outer = create_agent(
        FakeChatModel(replies=ANSWER, tool_calls=[("ask_expert", {"question": "paris?"})]),
        [ask_expert],
        name="boss",
    )
    outer.invoke({"messages": [("user", "go")]}, config={"callbacks": [handler]})

    trace = exporter.trace
    agents = [s for s in trace.spans if s.kind is SpanKind.AGENT]
    assert [a.name for a in agents] == ["boss", "weather_expert"]
    assert agents[1].ancestor(SpanKind.TOOL) is not None
    assert trace.usage_totals()["llm_calls"] == 4


def test_interrupt_is_not_an_error_and_resume_is_traced(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    def approve(state: Counter) -> dict[str, Any]:
        extra = interrupt("approve?")
        return {"n": state["n"] + extra}

    graph = StateGraph(Counter)
    graph.add_node("approve", approve)
    graph.add_edge(START, "approve")
    graph.add_edge("approve", END)
    app = graph.compile(checkpointer=InMemorySaver())
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t1"}}

    paused = app.invoke({"n": 1, "log": []}, config=config)
    assert "__interrupt__" in paused
    first = exporter.traces[0]
    node = next(s for s in first.spans if s.name == "approve")
    assert node.status is SpanStatus.OK
    assert node.attributes["langgraph.interrupt"] == "GraphInterrupt"
    assert first.root_span is not None and first.root_span.status is SpanStatus.OK
    assert first.root_span.attributes["langgraph.interrupted"] is True
    assert not first.has_error

    resumed = app.invoke(Command(resume=5), config=config)
    assert resumed["n"] == 6
    assert len(exporter.traces) == 2 and not exporter.traces[1].has_error
    assert handler.open_run_count == 0


def test_parent_command_from_subgraph_is_not_an_error(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    sub = StateGraph(Counter)
    sub.add_node(
        "handoff",
        lambda s: Command(goto="finish", update={"log": ["handoff"]}, graph=Command.PARENT),
    )
    sub.add_edge(START, "handoff")
    subgraph = sub.compile()

    parent = StateGraph(Counter)
    parent.add_node("delegate", subgraph, destinations=("finish",))
    parent.add_node("finish", lambda s: {"log": ["finish"]})
    parent.add_edge(START, "delegate")
    parent.add_edge("finish", END)
    result = parent.compile().invoke({"n": 0, "log": []}, config={"callbacks": [handler]})

    assert result["log"] == ["handoff", "finish"]
    trace = exporter.trace
    assert not trace.has_error
    assert any(s.attributes.get("langgraph.interrupt") == "ParentCommand" for s in trace.spans)


def test_failing_node_marks_node_and_graph_error(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    failure = ModelFailure("node exploded")

    def explode(state: Counter) -> dict[str, Any]:
        raise failure

    graph = StateGraph(Counter)
    graph.add_node("explode", explode)
    graph.add_edge(START, "explode")
    with pytest.raises(ModelFailure) as raised:
        graph.compile().invoke({"n": 0, "log": []}, config={"callbacks": [handler]})

    assert raised.value is failure
    statuses = {s.name: s.status for s in exporter.trace.spans}
    assert statuses == {"LangGraph": SpanStatus.ERROR, "explode": SpanStatus.ERROR}
    assert handler.open_run_count == 0


def test_stream_of_graph_with_llm_node(
    exporter: InMemoryExporter, handler: AgentOSCallbackHandler
) -> None:
    model = FakeChatModel(replies=["streamed node reply"])

    class Chat(TypedDict):
        text: str

    graph = StateGraph(Chat)
    graph.add_node("talk", lambda s: {"text": model.invoke(s["text"]).content})
    graph.add_edge(START, "talk")
    chunks = list(
        graph.compile().stream(
            {"text": "hi"}, config={"callbacks": [handler]}, stream_mode="messages"
        )
    )

    assert chunks  # LangGraph streamed the model's tokens
    llm = exporter.span("FakeChatModel")
    assert (llm.input_tokens, llm.output_tokens) == (12, 5)
    assert llm.attributes[attr.LANGGRAPH_NODE] == "talk"
    assert attr.LLM_TIME_TO_FIRST_TOKEN_MS in llm.attributes
