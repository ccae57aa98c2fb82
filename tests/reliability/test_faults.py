"""Fault injection across the whole pipeline: a LangChain app traced by the handler into a
full stack (metrics, dashboard, cost) with several exporters, one of which fails.

For every fault: the app's results are exactly those of the uninstrumented app, the loss
is counted (``testing.failure_counts()`` / ``dropped_counts()`` / the exporter's own
counter), the other exporters receive everything, and what was recorded before the fault
is still there after it. Hangs are bounded: the app runs in a thread that must finish
while the backend is still hanging (a liveness check with a generous limit, not a timing).
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from agentos_obs import BudgetAlert, SpanKind, Trace, create_observability_stack, testing
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.store import SQLiteStore
from agentos_obs.testing import FakeChatModel, InMemoryExporter

QUESTIONS = [{"question": f"question {i}"} for i in range(12)]
LIVENESS_S = 60.0  # a hang would block forever; any healthy run ends far sooner


def chain() -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    return prompt | FakeChatModel(replies=["a", "b", "c"]) | StrOutputParser()


def expected_answers() -> list[Any]:
    return chain().batch(QUESTIONS, config={"max_concurrency": 1})


def run_app(handler: AgentOSCallbackHandler) -> list[Any]:
    app = chain()
    return [app.invoke(q, config={"callbacks": [handler]}) for q in QUESTIONS]


def run_bounded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not finish."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LIVENESS_S)
    assert not thread.is_alive(), "the app was blocked by a failing backend"
    if "error" in box:
        raise box["error"]
    return box["result"]


def test_exporters_that_raise(lenient: None) -> None:
    calls: list[str] = []

    def broken(trace: Trace) -> None:
        calls.append(trace.trace_id)
        raise OSError("backend refused")

    stack = create_observability_stack("faults")
    exporter = InMemoryExporter()
    stack.tracer.add_exporter(broken)
    stack.tracer.add_exporter(exporter)  # after the broken one: must still get all
    answers = run_app(AgentOSCallbackHandler(tracer=stack.tracer))
    assert answers == expected_answers()
    stack.tracer.force_flush()  # the user's exporter runs on its own thread, behind a queue
    assert len(calls) == len(exporter.traces) == len(QUESTIONS)
    assert testing.failure_counts() == {"exporter:test_exporters_that_raise.<locals>.broken": 12}
    assert stack.dashboard.get_summary()["trace_count"] == len(QUESTIONS)


def test_span_processors_that_raise(lenient: None) -> None:
    class Broken:
        def on_start(self, span: Any) -> None:
            raise RuntimeError("processor bug")

        def on_end(self, span: Any) -> None:
            raise RuntimeError("processor bug")

    stack = create_observability_stack("faults")
    stack.tracer.add_span_processor(Broken())
    exporter = InMemoryExporter()
    stack.tracer.add_exporter(exporter)
    assert run_app(AgentOSCallbackHandler(tracer=stack.tracer)) == expected_answers()
    assert len(exporter.traces) == len(QUESTIONS)
    failures = testing.failure_counts()
    spans = 4 * len(QUESTIONS)
    assert failures == {
        "span_processor.on_start:test_span_processors_that_raise.<locals>.Broken.on_start": spans,
        "span_processor.on_end:test_span_processors_that_raise.<locals>.Broken.on_end": spans,
    }


def test_a_slow_exporter_delays_but_loses_nothing(tmp_path: Path) -> None:
    from agentos_obs.exporters.jsonl import JSONLExporter

    def slow(trace: Trace) -> None:
        time.sleep(0.002)

    stack = create_observability_stack("faults")
    jsonl = JSONLExporter(tmp_path / "traces.jsonl")
    stack.tracer.add_exporter(slow)
    stack.tracer.add_exporter(jsonl)
    assert run_app(AgentOSCallbackHandler(tracer=stack.tracer)) == expected_answers()
    assert jsonl.flush()
    jsonl.close()
    lines = (tmp_path / "traces.jsonl").read_text().splitlines()
    assert len(lines) == len(QUESTIONS)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block exits: nothing listens


def test_otlp_endpoint_down(lenient: None) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from agentos_obs.exporters.otlp import OTLPExporter

    stack = create_observability_stack("faults")
    otlp = OTLPExporter(
        endpoint=f"http://127.0.0.1:{_closed_port()}/v1/traces",
        timeout_s=0.5,
        flush_interval_s=0.05,
    )
    exporter = InMemoryExporter()
    stack.tracer.add_exporter(otlp)
    stack.tracer.add_exporter(exporter)
    answers = run_bounded(lambda: run_app(AgentOSCallbackHandler(tracer=stack.tracer)))
    assert answers == expected_answers()
    assert len(exporter.traces) == len(QUESTIONS)
    otlp.flush(timeout_s=30)
    assert otlp.dropped == len(QUESTIONS)  # every trace counted as lost, none silently
    assert testing.dropped_counts().get("otlp") == len(QUESTIONS)
    run_bounded(lambda: otlp.shutdown(timeout_s=5))


def test_a_hanging_otlp_backend_never_blocks_the_app(lenient: None) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from agentos_obs.exporters.otlp import OTLPExporter
    from otlp_receiver import OTLPReceiver

    with OTLPReceiver() as receiver:
        stack = create_observability_stack("faults")
        otlp = OTLPExporter(
            endpoint=receiver.endpoint,
            timeout_s=1,
            flush_interval_s=0.01,
            max_queue=4,
            batch_size=1,
        )
        stack.tracer.add_exporter(otlp)
        handler = AgentOSCallbackHandler(tracer=stack.tracer)
        # Before the fault: delivered (one at a time: the queue is tiny on purpose).
        app = chain()
        before = []
        for q in QUESTIONS:
            before.append(app.invoke(q, config={"callbacks": [handler]}))
            assert otlp.flush(timeout_s=30)
        assert receiver.wait_for_spans(4 * len(QUESTIONS))
        # The backend now holds every request (until released below).
        receiver.gate = threading.Event()
        during = run_bounded(lambda: run_app(handler) + run_app(handler))
        assert before == expected_answers() and during == expected_answers() * 2
        assert receiver.wait_for_attempts(len(QUESTIONS) + 1)  # the exporter is stuck on it
        assert otlp.dropped > 0  # the bounded queue overflowed: counted, not waited for
        receiver.gate.set()
        run_bounded(lambda: otlp.shutdown(timeout_s=10))
        # Nothing recorded before the fault was lost.
        names = [s.trace_id for s in receiver.spans]
        assert len(set(names)) >= len(QUESTIONS)


def _immutable(paths: list[Path], on: bool) -> None:
    """Make files read-only even for root (``chattr +i``); skip where unsupported."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    for path in paths:
        result = subprocess.run(
            [chattr, "+i" if on else "-i", str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"chattr not supported here: {result.stderr.strip()}")


@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.db"
    yield path
    # Never leave an immutable file behind (tmp_path cleanup would fail).
    for p in (path, Path(f"{path}-wal")):
        if p.exists() and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def _store_stack(path: Path, **kwargs: Any) -> tuple[Any, SQLiteStore, InMemoryExporter]:
    stack = create_observability_stack("faults")
    store = SQLiteStore(path, flush_interval_s=0.01, **kwargs)
    exporter = InMemoryExporter()
    stack.tracer.add_exporter(store)
    stack.tracer.add_exporter(exporter)
    return stack, store, exporter


def test_sqlite_becoming_read_only_while_the_app_runs(lenient: None, store_path: Path) -> None:
    stack, store, col = _store_stack(store_path)
    handler = AgentOSCallbackHandler(tracer=stack.tracer)
    assert run_app(handler) == expected_answers()
    assert store.flush()
    # The disk goes read-only (the main file and its WAL; the shared-memory index stays,
    # as SQLite maps it and a read-only map would kill the process, not the writes).
    files = [store_path, Path(f"{store_path}-wal")]
    _immutable(files, True)
    try:
        assert run_bounded(lambda: run_app(handler)) == expected_answers()
        store.flush()
        assert store.stats()["dropped_traces"] == len(QUESTIONS)
        assert testing.dropped_counts().get("store") == len(QUESTIONS)
    finally:
        _immutable(files, False)
    assert run_app(handler) == expected_answers()  # and it recovers
    assert store.flush()
    assert store.count_traces() == 2 * len(QUESTIONS)  # before + after; the fault's lost
    assert len(col.traces) == 3 * len(QUESTIONS)  # other exporters saw every trace
    store.close()


def test_sqlite_locked_by_another_writer(lenient: None, store_path: Path) -> None:
    stack, store, col = _store_stack(store_path, busy_timeout_s=0.05)
    assert not col.traces
    handler = AgentOSCallbackHandler(tracer=stack.tracer)
    assert run_app(handler) == expected_answers()
    assert store.flush()
    blocker = sqlite3.connect(store_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert run_bounded(lambda: run_app(handler)) == expected_answers()
        run_bounded(lambda: store.flush(timeout_s=30))
        assert store.stats()["dropped_traces"] > 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert run_app(handler) == expected_answers()
    assert store.flush()
    dropped = store.stats()["dropped_traces"]
    assert store.count_traces() == 3 * len(QUESTIONS) - dropped
    assert store.count_traces() >= 2 * len(QUESTIONS)  # nothing from before the lock lost
    store.close()


def test_budget_callbacks_that_raise(lenient: None) -> None:
    alerts: list[Any] = []

    def on_alert(status: Any) -> None:
        alerts.append(status)
        raise RuntimeError("pager is down")

    stack = create_observability_stack("faults")
    stack.add_budget(BudgetAlert(budget_limit=1e-9, threshold_pct=50, on_alert=on_alert))
    exporter = InMemoryExporter()
    stack.tracer.add_exporter(exporter)
    assert run_app(AgentOSCallbackHandler(tracer=stack.tracer)) == expected_answers()
    assert len(alerts) == 1  # fired once for the window, its failure reported
    assert testing.failure_counts() == {"budget_alert.on_alert": 1}
    assert len(exporter.traces) == len(QUESTIONS)
    assert stack.cost.summary()["calls"] == len(QUESTIONS)


def test_a_manual_span_around_a_failing_exporter_keeps_the_apps_exception(lenient: None) -> None:
    """The app's own exception (even one whose __str__ fails) passes through unchanged."""

    class AppError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("unprintable")

    stack = create_observability_stack("faults")
    stack.tracer.add_exporter(lambda trace: 1 / 0)
    error = AppError()
    with pytest.raises(AppError) as caught:
        with stack.tracer.start_span("agent", SpanKind.AGENT):
            raise error
    assert caught.value is error
    assert stack.tracer.active_trace_count == 0
    stack.tracer.shutdown()  # the failing exporter runs behind a queue: let it finish here
