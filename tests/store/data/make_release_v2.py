"""Writes ``release-v2.db``: a span store as the release with schema version 2 writes it.

Run once with that release's code (commit 1853d63 on branch ``restructure``), from the
repository root: ``PYTHONPATH=src:tests python tests/store/data/make_release_v2.py``. The
upgrade test (test_store_upgrade_v2.py) opens a copy of the file this made; the file, not
this script, is the fixture (later code must not change what it holds).

What it holds: 6 traces from a LangChain chain (prompt > fake chat model with usage >
parser) for two users and two sessions, one with a failed model call (no usage), one with
an unpriced model, one distributed trace in two parts (two services), one with events and
odd attribute values, one plain tracer trace with a tool error.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.pricing import PriceCatalog
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from lc_fakes import PRICES, FailingChatModel, FakeUsageChatModel

OUT = Path(__file__).with_name("release-v2.db")


def main() -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(OUT) + suffix).unlink(missing_ok=True)
    store = SQLiteStore(OUT)
    catalog = PriceCatalog(overrides=PRICES)
    tracer = Tracer("release-app", pricing=catalog)
    tracer.add_exporter(store)
    handler = AgentOSCallbackHandler(tracer=tracer)
    prompt = ChatPromptTemplate.from_messages([("user", "Say {word}")])
    chain = prompt | FakeUsageChatModel(input_tokens=120, output_tokens=30) | StrOutputParser()
    for i, (user, session) in enumerate([("ann", "s1"), ("ann", "s1"), ("bob", "s2")]):
        chain.invoke(
            {"word": f"hello {i}"},
            config={"callbacks": [handler], "metadata": {"user_id": user, "session_id": session}},
        )
    failing = prompt | FailingChatModel()
    with contextlib.suppress(Exception):
        failing.invoke({"word": "fail"}, config={"callbacks": [handler]})
    unpriced = prompt | FakeUsageChatModel(model_name="mystery-model", input_tokens=7)
    unpriced.invoke({"word": "x"}, config={"callbacks": [handler]})
    # A distributed trace: the front service's part and a worker's part, one trace id.
    with tracer.start_span("frontdesk", SpanKind.AGENT, {"user.id": "cat", "odd": [1, 2]}) as f:
        f.add_event("handoff", {"to": "worker"})
        with tracer.start_span("lookup", SpanKind.TOOL) as tool:
            tool.set_error("ConnectionError: no route")
            tool.status = SpanStatus.ERROR
    worker = Tracer("release-worker", pricing=catalog)
    worker.add_exporter(store)
    part = worker.begin_span("backend", SpanKind.AGENT, trace_id=f.trace_id, parent_id=f.span_id)
    chat = worker.begin_span("chat", SpanKind.LLM, parent=part)
    worker.record_usage(chat, model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
    worker.end_span(chat)
    worker.end_span(part)
    assert store.flush()
    store.close()
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
