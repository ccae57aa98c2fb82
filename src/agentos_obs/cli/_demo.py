"""``agentos-obs demo``: offline example pipelines, traced into the store, then summarised.

Four pipelines, each a real LangChain or LlamaIndex program with the real AgentOS
integrations; only the models are local stand-ins (:mod:`agentos_obs.testing`):

1. ``research_agent`` (LangChain, gpt-4o-mini): a tool-calling loop with a retriever tool
   and a calculator, for three questions from two users.
2. ``support_agent`` (LangChain, claude-3-5-haiku): its order-status tool fails (a
   connection error); the agent reports the failure and answers from the docs instead.
3. ``release_notes`` (LangChain LCEL, claude-3-5-haiku): a streamed completion (time to
   first token, usage from the last chunk).
4. ``docs_qa`` (LlamaIndex, gpt-4o): a query engine over a vector index, inside an AgentOS
   agent span so it is attributed to an agent and a user.

Then the traces are read back from the store — what ``agentos-obs ui`` will show — and
printed: the span trees, cost and tokens by model and by agent, latency percentiles by
stage, and the error rate.
"""

from __future__ import annotations

import argparse
import ast
import operator
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs.cli._common import CLIError, console, terminal_safe, write_json
from agentos_obs.errors import ConfigurationError
from agentos_obs.store import StoreReader, resolve_db_path
from agentos_obs.tracing._spans import SpanKind
from agentos_obs.tracing._tracer import Tracer, TracerConfig

__all__ = ["DOCUMENTS", "cmd_demo", "run_pipelines"]

DOCUMENTS = (
    "Refunds: an order can be refunded within 30 days of delivery. Opened items carry a 15% "
    "restocking fee, deducted from the refund.",
    "Plans and SSO: the Team and Enterprise plans include single sign-on (SAML and OIDC). The "
    "Starter plan does not include SSO.",
    "API keys: rotate an API key under Settings > API keys > Rotate. The old key keeps working "
    "for 24 hours so deployments can switch over.",
    "Rate limits: the Starter plan allows 60 requests per minute, the Team plan 600 requests "
    "per minute, and Enterprise plans have custom limits.",
    "Shipping: orders ship within 2 business days. A tracking link is emailed when the parcel "
    "leaves the warehouse; order status is also in the Orders page.",
)

SYSTEM_PROMPT = (
    "You are a helpful assistant for Acme Cloud. Answer from the tools' results only, cite "
    "the policy you used, and say so plainly when a tool fails. Be concise and accurate."
)

# question -> (user, tool calls the scripted model makes)
RESEARCH_QUESTIONS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    "What is the refund window, and how much comes back on a $240 opened item?": (
        "alice",
        [
            ("search_docs", {"query": "refund restocking fee opened items"}),
            ("calculator", {"expression": "240 * (1 - 0.15)"}),
        ],
    ),
    "Which plans include SSO?": ("alice", [("search_docs", {"query": "plans SSO sign-on"})]),
    "What are the rate limits on the Team plan?": (
        "erin",
        [("search_docs", {"query": "rate limits team plan requests"})],
    ),
}
SUPPORT_QUESTION = "Where is my order A-1042?"
SUPPORT_PLAN = [
    ("get_order_status", {"order_id": "A-1042"}),
    ("search_docs", {"query": "shipping order status tracking"}),
]
LLAMA_QUESTIONS = ("How do I rotate an API key?", "Does the Starter plan include SSO?")


# -- tools -----------------------------------------------------------------------------------
_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


def safe_arithmetic(expression: str) -> float:
    """Evaluate + - * / and parentheses on numbers (never ``eval``)."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported expression: {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


class _Pace:
    """Simulated latency: real model calls take hundreds of ms; ``--fast`` turns it off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, seconds: float) -> float:
        return seconds if self.enabled else 0.0

    def sleep(self, seconds: float) -> None:
        if self.enabled:
            time.sleep(seconds)


# -- pipelines -------------------------------------------------------------------------------
def _langchain_pipelines(tracer: Tracer, pace: _Pace) -> None:
    from langchain_core.documents import Document
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableConfig, RunnableLambda
    from langchain_core.tools import BaseTool, tool

    from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler
    from agentos_obs.testing import FakeChatModel, FakeRetriever

    handler = AgentOSCallbackHandler(tracer=tracer)
    retriever = FakeRetriever(
        documents=[
            Document(page_content=text, metadata={"source": f"kb/{i}"})
            for i, text in enumerate(DOCUMENTS)
        ],
        k=2,
        latency_s=pace(0.04),
    )

    @tool
    def search_docs(query: str) -> str:
        """Search the Acme Cloud knowledge base."""
        docs = retriever.invoke(query)
        return "\n".join(d.page_content for d in docs) or "No matching document."

    @tool
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression such as 240 * (1 - 0.15)."""
        pace.sleep(0.01)
        return f"{safe_arithmetic(expression):g}"

    @tool
    def get_order_status(order_id: str) -> str:
        """Look up the shipping status of an order."""
        pace.sleep(0.15)
        raise ConnectionError(
            f"orders service unreachable while fetching {order_id}: timed out after 2.0 s"
        )

    def make_agent(name: str, model: FakeChatModel, tools: list[BaseTool]) -> Any:
        by_name = {t.name: t for t in tools}
        bound = model.bind_tools(tools)

        def run_agent(inputs: dict[str, str], config: RunnableConfig) -> str:
            messages: list[Any] = [SystemMessage(SYSTEM_PROMPT), HumanMessage(inputs["question"])]
            for _ in range(4):  # a bounded tool loop, like any production agent
                reply = bound.invoke(messages, config)
                messages.append(reply)
                if not reply.tool_calls:
                    return str(reply.content)
                for call in reply.tool_calls:
                    try:
                        messages.append(by_name[call["name"]].invoke(call, config))
                    except Exception as exc:  # the agent reports a tool failure and goes on
                        messages.append(
                            ToolMessage(f"error: {exc}", tool_call_id=call["id"], status="error")
                        )
            return str(messages[-1].content)

        return RunnableLambda(run_agent, name=name).with_config(metadata={"agentos_kind": "agent"})

    def config(user: str, session: str) -> RunnableConfig:
        return {"callbacks": [handler], "metadata": {"user_id": user, "session_id": session}}

    research = make_agent(
        "research_agent",
        FakeChatModel(
            model_name="gpt-4o-mini",
            provider="openai",
            tool_plan={q: plan for q, (_, plan) in RESEARCH_QUESTIONS.items()},
            replies=["From the knowledge base:"],
            input_tokens=None,  # counted from the text: every question costs what it says
            output_tokens=None,
            cached_prefix_tokens=64,
            latency_s=pace(0.22),
        ),
        [search_docs, calculator],
    )
    for index, (question, (user, _)) in enumerate(RESEARCH_QUESTIONS.items()):
        research.invoke({"question": question}, config(user, f"{user}-session-{index // 2 + 1}"))

    support = make_agent(
        "support_agent",
        FakeChatModel(
            model_name="claude-3-5-haiku-latest",
            provider="anthropic",
            tool_plan={SUPPORT_QUESTION: SUPPORT_PLAN},
            replies=["Sorry, I could not reach the orders service just now."],
            input_tokens=None,
            output_tokens=None,
            latency_s=pace(0.3),
        ),
        [get_order_status, search_docs],
    )
    support.invoke({"question": SUPPORT_QUESTION}, config("bob", "bob-session-1"))

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You write short, friendly release notes."),
            ("human", "Release notes for: {change}"),
        ]
    )
    writer = FakeChatModel(
        model_name="claude-3-5-haiku-latest",
        provider="anthropic",
        replies=[
            "New this week: API keys can be rotated with a 24-hour grace period, and "
            "Team plans now include SSO with SAML and OIDC."
        ],
        input_tokens=None,
        output_tokens=None,
        latency_s=pace(0.45),
    )
    chain = (prompt | writer | StrOutputParser()).with_config(run_name="release_notes")
    for _ in chain.stream({"change": "key rotation and SSO"}, config("carol", "carol-session-1")):
        pass


def _llama_index_pipeline(tracer: Tracer, pace: _Pace) -> None:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    import agentos_obs.integrations.llama_index as li_integration
    from agentos_obs.testing import FakeOpenAI

    def answer(prompt: str) -> str:
        for question in LLAMA_QUESTIONS:
            if question in prompt:
                if "rotate" in question:
                    return (
                        "Go to Settings > API keys > Rotate; the old key works for 24 more hours."
                    )
                return "No: SSO comes with the Team and Enterprise plans, not Starter."
        return "I could not find that in the documentation."

    llm = FakeOpenAI(
        model="gpt-4o",
        answer=answer,
        input_tokens=None,  # counted from the prompt and the answer
        output_tokens=None,
        cache_read_tokens=0,
        reasoning_tokens=0,
        latency_s=pace(0.35),
    )
    embed = MockEmbedding(embed_dim=16)
    previous_llm, previous_embed = Settings._llm, Settings._embed_model
    li_integration.instrument(tracer=tracer)
    try:
        Settings.llm = llm
        Settings.embed_model = embed
        # Indexing is work too: one trace of its own rather than several loose roots.
        with tracer.start_span("build_docs_index", SpanKind.CHAIN):
            index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
        engine = index.as_query_engine(similarity_top_k=2)
        for question in LLAMA_QUESTIONS:
            with tracer.start_span(
                "docs_qa",
                SpanKind.AGENT,
                attributes={attr.USER_ID: "dave", attr.SESSION_ID: "dave-session-1"},
            ):
                engine.query(question)
    finally:
        li_integration.uninstrument()
        Settings._llm, Settings._embed_model = previous_llm, previous_embed


@contextmanager
def _demo_tracer(db_path: Path) -> Iterator[Tracer]:
    """A tracer of our own (the process-wide default stack is left alone) writing to the
    store; flushed and closed at the end so every trace is on disk before we read back."""
    from agentos_obs.store._writer import SQLiteStore

    try:
        store = SQLiteStore(db_path, flush_interval_s=0.1)
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None
    tracer = Tracer(config=TracerConfig(service_name="agentos-demo", capture_content=True))
    tracer.add_exporter(store)
    try:
        yield tracer
    finally:
        store.flush()
        store.close()


def run_pipelines(db_path: Path, *, fast: bool = False) -> datetime:
    """Run the four pipelines into the store at ``db_path``; return when they started."""
    started = datetime.now(timezone.utc)
    pace = _Pace(not fast)
    with _demo_tracer(db_path) as tracer:
        _langchain_pipelines(tracer, pace)
        _llama_index_pipeline(tracer, pace)
    return started


def cmd_demo(args: argparse.Namespace) -> int:
    db_path = resolve_db_path(args.db)
    out = None if args.format == "json" else console()
    if out is not None:
        out.print(
            "[bold]agentos-obs demo[/bold]: running 4 offline pipelines — a LangChain agent "
            "with tools and a retriever, an agent whose tool fails, a streaming call, a "
            "LlamaIndex query engine…"
        )
    try:
        started = run_pipelines(db_path, fast=args.fast)
    except ImportError as exc:
        raise CLIError(
            f"the demo needs LangChain and LlamaIndex: pip install 'agentos-obs[all]' ({exc})"
        ) from None
    with StoreReader(db_path) as reader:
        rows, _ = reader.traces(since=started, limit=1000)
        traces = [reader.trace(row["trace_id"]) for row in reversed(rows)]
        report = {
            "db": str(db_path),
            "summary": reader.summary(since=started),
            "by_model": reader.breakdown("model", since=started),
            "by_agent": reader.breakdown("agent", since=started),
            "by_user": reader.breakdown("user", since=started),
            "stages": reader.stages(since=started),
            "traces": [t for t in traces if t is not None],
        }
    if out is None:
        write_json(report)
        return 0
    _print_report(out, report)
    return 0


def _print_report(out: Any, report: dict[str, Any]) -> None:
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    from agentos_obs.cli._render import breakdown_table, stages_table, summary_table, trace_tree

    out.print(Rule("Traces"))
    for trace in report["traces"]:
        out.print(trace_tree(trace))
        out.print()
    out.print(Rule("Summary"))
    out.print(summary_table(report["summary"]))
    out.print()
    out.print(breakdown_table(report["by_model"], "model", title="Cost and tokens by model"))
    out.print(breakdown_table(report["by_agent"], "agent", title="Cost and tokens by agent"))
    out.print(stages_table(report["stages"], title="Latency by stage (inclusive and self time)"))
    db = report["db"]
    count = report["summary"]["trace_count"]
    out.print(Text.assemble(f"\nStored {count} traces in ", (terminal_safe(db), "bold")))
    # The default store needs no --db: `agentos-obs ui` alone finds it.
    db_flag = "" if Path(db) == resolve_db_path(None) else f" --db {shlex.quote(db)}"
    table = Table(box=None, show_header=False, pad_edge=False, title="Next:", title_justify="left")
    table.add_column(style="bold")
    table.add_column(style="dim")
    for command, what in (
        ("ui", "the dashboard on http://127.0.0.1:8686/"),
        ("traces", "list traces; then agentos-obs traces show ID"),
        ("costs --as-model gpt-4o-mini", "the same calls re-priced"),
    ):
        table.add_row(Text(terminal_safe(f"agentos-obs {command}{db_flag}")), what)
    out.print(table)
