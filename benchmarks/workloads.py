"""The six benchmark workloads, offline: the fake models of ``agentos_obs.testing``, built on
the frameworks' real classes.

Every fake reports token usage the way a provider integration does (LangChain:
``AIMessage.usage_metadata`` and ``response_metadata["model_name"]``, a final streamed
chunk carrying usage; LlamaIndex: an OpenAI-shaped ``raw["usage"]``), so each tool under
test does its real work: callbacks fire, usage is parsed, spans are built and priced.

A workload is built once per configuration: ``build(callbacks)`` returns the operation to
time (``op()``) with the given LangChain callbacks passed per call (``None`` = none, which
is also how globally instrumented configurations run).

1. ``lcel_invoke``   prompt | chat model | parser, ``invoke``
2. ``lcel_stream``   the same, ``stream`` consumed to the end
3. ``agent_pipeline`` ~13 nested runnables: planning lambda, retriever, a tool, prompt,
   model, parser, post-processing
4. ``concurrent_ainvoke`` 200 concurrent ``ainvoke`` of (1) with ``asyncio.gather``
5. ``llamaindex_query`` a LlamaIndex vector query engine ``query`` (mock embeddings)
6. ``core_*``        the tracer alone (defined in run.py: no framework involved)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool

from agentos_obs.testing import FakeChatModel, FakeRetriever

__all__ = [
    "CONCURRENCY",
    "LANGCHAIN_WORKLOADS",
    "Workload",
    "bench_chat_model",
    "bench_retriever",
    "build_agent_pipeline",
    "build_lcel_chain",
    "build_llamaindex_query_engine",
    "workloads",
]

MODEL = "gpt-4o-mini"
INPUT_TOKENS = 42
OUTPUT_TOKENS = 7
CONCURRENCY = 200
REPLY = "Paris is the capital of France and it is sunny today"
# A secret no tool should record: the fake model puts it in its invocation parameters.
API_KEY = "sk-bench-0123456789abcdefghijklmnop"


def bench_chat_model() -> FakeChatModel:
    """A chat model that answers instantly and reports usage like ``ChatOpenAI``."""
    return FakeChatModel(
        model_name=MODEL,
        provider="openai",
        replies=[REPLY],
        input_tokens=INPUT_TOKENS,
        output_tokens=OUTPUT_TOKENS,
        api_key=API_KEY,
    )


_DOCS = [
    Document(page_content="Paris is the capital of France.", metadata={"source": "atlas"}),
    Document(page_content="The weather in Paris is often mild.", metadata={"source": "wiki"}),
    Document(page_content="Berlin is the capital of Germany.", metadata={"source": "atlas"}),
    Document(page_content="Rome is the capital of Italy.", metadata={"source": "atlas"}),
]


def bench_retriever() -> FakeRetriever:
    """Keyword search over four documents, at most two hits."""
    return FakeRetriever(documents=_DOCS, k=2)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "You are a terse assistant."), ("human", "{question}")]
)
_RAG_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the context.\n{context}\nWeather: {weather}"),
        ("human", "{question}"),
    ]
)


def build_lcel_chain() -> Runnable[dict[str, str], str]:
    """Workload (1)/(2)/(4): prompt | chat model | parser (4 runs per invocation)."""
    return _PROMPT | bench_chat_model() | StrOutputParser()


def _plan(inputs: dict[str, str]) -> dict[str, str]:
    return {"question": inputs["question"].strip(), "city": "Paris"}


def _format_docs(docs: Sequence[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


def _call_tool(inputs: dict[str, Any]) -> dict[str, Any]:
    return {**inputs, "weather": get_weather.invoke({"city": inputs["city"]})}


def _postprocess(answer: str) -> dict[str, Any]:
    return {"answer": answer, "length": len(answer)}


def build_agent_pipeline() -> Runnable[dict[str, str], dict[str, Any]]:
    """Workload (3): an agent-like pipeline of nested runnables with a tool and a retriever.

    Runs per invocation: agent (sequence) › plan, gather (assign › parallel › context
    sequence › itemgetter, retriever, format_docs), call_tool › get_weather, answer
    (sequence › prompt, model, parser), postprocess.
    """
    context = (
        itemgetter("question") | bench_retriever() | RunnableLambda(_format_docs)
    ).with_config(run_name="retrieve_context")
    answer = (_RAG_PROMPT | bench_chat_model() | StrOutputParser()).with_config(run_name="answer")
    pipeline = (
        RunnableLambda(_plan).with_config(run_name="plan")
        | RunnablePassthrough.assign(context=context).with_config(run_name="gather")
        | RunnableLambda(_call_tool).with_config(run_name="call_tool")
        | answer
        | RunnableLambda(_postprocess).with_config(run_name="postprocess")
    )
    return pipeline.with_config(run_name="agent")


def build_llamaindex_query_engine() -> Any:
    """Workload (5): a vector index over a few documents, queried with a fake LLM.

    Imported lazily so the LangChain workloads run without LlamaIndex installed.
    """
    from llama_index.core import Document as LIDocument
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    from agentos_obs.testing import FakeOpenAI

    llm = FakeOpenAI(
        model=MODEL,
        reply=REPLY,
        input_tokens=INPUT_TOKENS,
        output_tokens=OUTPUT_TOKENS,
        cache_read_tokens=0,
        reasoning_tokens=0,
    )
    documents = [LIDocument(text=d.page_content, metadata=dict(d.metadata)) for d in _DOCS]
    embed = MockEmbedding(embed_dim=8)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    return index.as_query_engine(llm=llm, similarity_top_k=2)


@dataclass
class Workload:
    """One benchmark workload: ``build(callbacks)`` returns the operation to time."""

    key: str
    title: str
    framework: str  # "langchain" | "llama_index"
    build: Callable[[list[Any] | None], Callable[[], object]]
    inner: int  # operations per timed block
    # Runs/spans one invocation produces (a trace-tree check for every configuration).
    runs_per_invocation: int
    invocations_per_op: int = 1


def _invoke_op(chain: Runnable[Any, Any], payload: Any) -> Callable[[list[Any] | None], Any]:
    def build(callbacks: list[Any] | None) -> Callable[[], object]:
        config: Any = {"callbacks": callbacks} if callbacks else None

        def op() -> object:
            return chain.invoke(payload, config=config)

        return op

    return build


def _stream_op(chain: Runnable[Any, Any], payload: Any) -> Callable[[list[Any] | None], Any]:
    def build(callbacks: list[Any] | None) -> Callable[[], object]:
        config: Any = {"callbacks": callbacks} if callbacks else None

        def op() -> object:
            return "".join(chain.stream(payload, config=config))

        return op

    return build


def _gather_op(chain: Runnable[Any, Any], payload: Any) -> Callable[[list[Any] | None], Any]:
    def build(callbacks: list[Any] | None) -> Callable[[], object]:
        config: Any = {"callbacks": callbacks} if callbacks else None
        loop = asyncio.new_event_loop()

        async def many() -> list[Any]:
            return await asyncio.gather(
                *(chain.ainvoke(payload, config=config) for _ in range(CONCURRENCY))
            )

        def op() -> object:
            return loop.run_until_complete(many())

        return op

    return build


def _query_op() -> Callable[[list[Any] | None], Any]:
    def build(callbacks: list[Any] | None) -> Callable[[], object]:
        engine = build_llamaindex_query_engine()

        def op() -> object:
            return engine.query("What is the capital of France?")

        return op

    return build


_QUESTION = {"question": "What is the capital of France?"}


def workloads() -> list[Workload]:
    """The framework workloads, in the issue's order (the core one lives in run.py)."""
    chain = build_lcel_chain()
    pipeline = build_agent_pipeline()
    return [
        Workload("lcel_invoke", "(1) LCEL prompt|model|parser invoke", "langchain",
                 _invoke_op(chain, _QUESTION), inner=100, runs_per_invocation=4),
        Workload("lcel_stream", "(2) LCEL prompt|model|parser stream", "langchain",
                 _stream_op(chain, _QUESTION), inner=100, runs_per_invocation=4),
        Workload("agent_pipeline", "(3) agent-like pipeline: 13 runnables, tool, retriever",
                 "langchain", _invoke_op(pipeline, _QUESTION), inner=50,
                 runs_per_invocation=15),
        Workload("concurrent_ainvoke", f"(4) {CONCURRENCY} concurrent ainvoke of (1)",
                 "langchain", _gather_op(chain, _QUESTION), inner=1,
                 runs_per_invocation=4, invocations_per_op=CONCURRENCY),
        Workload("llamaindex_query", "(5) LlamaIndex vector query engine query",
                 "llama_index", _query_op(), inner=50, runs_per_invocation=0),
    ]  # fmt: skip


LANGCHAIN_WORKLOADS = ("lcel_invoke", "lcel_stream", "agent_pipeline", "concurrent_ainvoke")
