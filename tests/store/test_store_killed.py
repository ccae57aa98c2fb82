"""A real process SIGKILLed in the middle of a multi-step LangChain agent: every span that
had ended, and the cost of its finished LLM calls, are in the store; the trace it was
running is shown as running, then as incomplete once a store starts on the file again."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentos_obs.store import SQLiteStore

TESTS = Path(__file__).resolve().parents[1]

VICTIM = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda
    from lc_fakes import PRICES
    from agentos_obs.testing import FakeChatModel
    from agentos_obs.integrations.langchain import AgentOSCallbackHandler
    from agentos_obs.pricing import PriceCatalog
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import Tracer

    class Reporter:
        # Says each span that ended: what must be in the store after the kill.
        def on_end(self, record):
            cost = record.cost_usd if record.counts_usage else ""
            print("ended", record.span_id, record.name, cost, flush=True)

    store = SQLiteStore(sys.argv[1], flush_interval_s=0.05)
    tracer = Tracer("victim", pricing=PriceCatalog(overrides=PRICES))
    tracer.add_span_processor(Reporter())
    store.attach(tracer)
    handler = AgentOSCallbackHandler(tracer=tracer)
    model = FakeChatModel(input_tokens=1000, output_tokens=100)
    prompt = ChatPromptTemplate.from_messages([("user", "{q}")])

    def research(text, config):
        step = prompt | model | StrOutputParser()
        return step.invoke({"q": "more on " + text}, config=config)

    def stuck(text):
        print("blocked", flush=True)
        time.sleep(3600)

    agent = prompt | model | StrOutputParser() | RunnableLambda(research) | RunnableLambda(stuck)
    agent.invoke({"q": "start"}, config={"callbacks": [handler], "metadata": {"user_id": "ann"}})
    """
)


def test_sigkill_mid_agent_keeps_every_ended_span_and_the_cost_of_finished_calls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(path), str(TESTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ended: dict[str, tuple[str, str]] = {}
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"the agent exited early: {proc.stderr.read() if proc.stderr else ''}")
            if line.strip() == "blocked":
                break
            _, span_id, name, cost = [*line.rstrip("\n").split(" "), ""][:4]
            ended[span_id] = (name, cost)
        time.sleep(1.0)  # twenty flush intervals: what ended has been committed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    calls = [float(cost) for _, cost in ended.values() if cost]
    assert len(calls) == 2 and len(ended) >= 6  # two model calls and their chain steps
    # Before any store opens the file again: the agent's trace is still "running".
    conn = sqlite3.connect(path)
    try:
        ((status, span_count),) = conn.execute("SELECT status, span_count FROM traces").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert status == "running" and span_count == len(ended)

    with SQLiteStore(path) as store:  # the next start of a store on the file
        (row,) = store.list_traces()
        assert row["status"] == "incomplete"
        assert row["user_id"] == "ann"
        stored = store.get_trace(row["trace_id"])
        assert stored is not None
        assert {s["span_id"] for s in stored["spans"]} == set(ended)
        assert {s["span_id"]: s["name"] for s in stored["spans"]} == {
            k: v[0] for k, v in ended.items()
        }
        assert row["cost_usd"] == pytest.approx(sum(calls)) == pytest.approx(0.0024)
        summary = store.summary()
        assert summary["incomplete_traces"] == 1 and summary["llm_calls"] == 2
        assert summary["total_cost_usd"] == pytest.approx(sum(calls))
        (model,) = store.aggregate("model")
        assert model["llm_calls"] == 2 and model["input_tokens"] == 2000
        assert store.stats()["marked_incomplete"] == 1
