"""Spans written as they end: a trace shows as running while it runs, settles when it ends,
and becomes incomplete when it never does — its spans and their cost kept."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer, TracerConfig, TraceRecord


class FixedPricing:
    """$1 per 1k input tokens, $2 per 1k output."""

    def cost(self, model: str, usage: Any, provider: str | None = None) -> float:
        return usage.input_tokens / 1000 + usage.output_tokens / 500


@pytest.fixture
def tracer() -> Tracer:
    return Tracer("svc", pricing=FixedPricing())  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path, tracer: Tracer) -> Any:
    db = SQLiteStore(tmp_path / "live.db", flush_interval_s=0.02)
    db.attach(tracer)
    yield db
    db.close()


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def call(tracer: Tracer, tokens: int = 1000) -> None:
    with tracer.start_span("chat", SpanKind.LLM) as llm:
        tracer.record_usage(llm, model="gpt-4o", input_tokens=tokens, output_tokens=0)


def test_a_running_trace_is_stored_as_its_spans_end_and_settles_when_it_ends(
    tracer: Tracer, store: SQLiteStore
) -> None:
    with tracer.start_span("agent", SpanKind.AGENT, {"user.id": "ann"}) as root:
        assert store.flush()
        # The root has started: the trace is listed as running, before any span ended.
        (early,) = store.list_traces()
        assert early["status"] == "running" and early["span_count"] == 0
        assert early["name"] == "agent"
        call(tracer, 1000)
        with tracer.start_span("tool", SpanKind.TOOL):
            pass
        assert store.flush()
        (running,) = store.list_traces(status="running")
        assert running["trace_id"] == root.trace_id
        assert running["span_count"] == 2 and running["llm_calls"] == 1
        assert running["cost_usd"] == pytest.approx(1.0) and running["user_id"] == "ann"
        shown = store.get_trace(root.trace_id)
        assert shown is not None and shown["status"] == "running"
        assert [s["name"] for s in shown["spans"]] == ["chat", "tool"]
        # Aggregates settle when the trace ends: not yet.
        assert store.summary()["llm_calls"] == 0
        assert store.summary()["running_traces"] == 1
        call(tracer, 3000)
        assert store.flush()
        grown = store.get_trace(root.trace_id)
        assert grown is not None and len(grown["spans"]) == 3  # the waterfall grows
    assert store.flush()
    (done,) = store.list_traces()
    assert done["status"] == "ok" and done["span_count"] == 4 and done["llm_calls"] == 2
    assert done["cost_usd"] == pytest.approx(4.0)
    stored = store.get_trace(root.trace_id)
    assert stored is not None
    assert sorted(s["span_id"] for s in stored["spans"]) == sorted(
        s.span_id
        for s in root.trace.spans  # type: ignore[union-attr]
    )  # every span once: written live, not again when the trace ended
    summary = store.summary()
    assert (summary["trace_count"], summary["finished_traces"], summary["running_traces"]) == (
        1,
        1,
        0,
    )
    assert summary["llm_calls"] == 2 and summary["total_cost_usd"] == pytest.approx(4.0)
    assert summary["span_count"] == 4
    assert store.stats()["live_traces"] == 0  # nothing remembered once it ended


def test_self_time_of_a_parent_written_before_a_late_child(
    tracer: Tracer, store: SQLiteStore
) -> None:
    """A child that ends after its parent (fire and forget): the parent's self time is
    fixed when the trace ends."""
    with tracer.start_trace("job"):
        parent = tracer.begin_span("parent", SpanKind.CHAIN)
        child = tracer.begin_span("late-child", SpanKind.TOOL, parent=parent)
        time.sleep(0.02)
        tracer.end_span(parent)
        assert store.flush()  # the parent is written before its child ends
        time.sleep(0.01)
        tracer.end_span(child)
    assert store.flush()
    record = parent.trace.record  # type: ignore[union-attr]
    assert record is not None
    stored = store.get_trace(record.trace_id)
    assert stored is not None
    by_name = {s["name"]: s for s in stored["spans"]}
    parent_record = record.get_span(parent.span_id)
    assert parent_record is not None
    assert by_name["parent"]["self_ms"] == pytest.approx(record.self_time_ms(parent_record))
    assert by_name["parent"]["self_ms"] < by_name["parent"]["duration_ms"] / 2


def test_a_silent_trace_becomes_incomplete_and_keeps_its_spans_and_cost(
    tmp_path: Path, tracer: Tracer
) -> None:
    store = SQLiteStore(tmp_path / "i.db", flush_interval_s=0.02, incomplete_after_s=0.3)
    store.attach(tracer)
    try:
        with tracer.start_span("stuck", SpanKind.AGENT) as stuck:
            call(tracer, 2000)
            assert store.flush()
            time.sleep(0.4)
            # Another trace's batch: the writer looks for silent traces after it.
            other = tracer.begin_span("other", SpanKind.CHAIN, use_context=False)
            tracer.end_span(other)
            assert store.flush()
            row = {r["trace_id"]: r for r in store.list_traces()}[stuck.trace_id]
            assert row["status"] == "incomplete"
            summary = store.summary()
            # Its finished call counts (the money was spent); its duration does not.
            assert summary["llm_calls"] == 1 and summary["total_cost_usd"] == pytest.approx(2.0)
            assert summary["incomplete_traces"] == 1 and summary["finished_traces"] == 1
            assert {r["key"]: r["llm_calls"] for r in store.aggregate("model")} == {"gpt-4o": 1}
            # It was not dead after all: a new span reopens it...
            call(tracer, 1000)
            assert store.flush()
            row = {r["trace_id"]: r for r in store.list_traces()}[stuck.trace_id]
            assert row["status"] == "running"
        # ...and when it ends, each call is counted once.
        assert store.flush()
        summary = store.summary()
        assert summary["llm_calls"] == 2 and summary["total_cost_usd"] == pytest.approx(3.0)
        assert summary["finished_traces"] == 2 and summary["incomplete_traces"] == 0
        assert store.stats()["marked_incomplete"] == 1
    finally:
        store.close()


def test_closing_the_store_declares_what_still_runs_incomplete(
    tmp_path: Path, tracer: Tracer
) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path, flush_interval_s=0.02)
    store.attach(tracer)
    span = tracer.begin_span("never-ends", SpanKind.AGENT)
    child = tracer.begin_span("chat", SpanKind.LLM, parent=span)
    tracer.record_usage(child, model="gpt-4o", input_tokens=500, output_tokens=0)
    tracer.end_span(child)
    store.close()
    with SQLiteStore.open_readonly(path) as reader:
        (row,) = reader.list_traces()
        assert row["status"] == "incomplete" and row["span_count"] == 1
        assert reader.summary()["total_cost_usd"] == pytest.approx(0.5)
    assert rows(path, "SELECT COUNT(*) FROM writers") == [(0,)]


def test_concurrent_traces_from_threads_and_tasks_are_stored_once_each(
    tracer: Tracer, store: SQLiteStore
) -> None:
    def work(i: int) -> None:
        with tracer.start_span(f"job-{i}", SpanKind.AGENT, {"user.id": f"u{i % 3}"}):
            for _ in range(3):
                call(tracer, 100)
            with tracer.start_span("tool", SpanKind.TOOL):
                time.sleep(0.001)

    threads = [
        threading.Thread(target=lambda k=k: [work(k * 100 + j) for j in range(20)])
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def task(i: int) -> None:
        with tracer.start_span(f"task-{i}", SpanKind.AGENT):
            await asyncio.sleep(0.001)
            call(tracer, 100)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(100)))

    asyncio.run(main())
    assert store.flush()
    assert store.count_traces() == 260
    assert store.count_traces(status="ok") == 260
    span_rows = rows(store.path, "SELECT COUNT(*), COUNT(DISTINCT span_id) FROM spans")
    assert span_rows == [(160 * 5 + 100 * 2, 160 * 5 + 100 * 2)]
    summary = store.summary()
    assert summary["llm_calls"] == 160 * 3 + 100
    assert summary["span_count"] == 160 * 5 + 100 * 2
    assert summary["users"] == 3
    assert sum(r["traces"] for r in store.aggregate("user")) == 260
    assert store.stats()["dropped_spans"] == store.stats()["dropped_traces"] == 0


def test_unsampled_traces_are_not_stored_live_either(tmp_path: Path) -> None:
    tracer = Tracer(config=TracerConfig(service_name="s", sampling_ratio=0.5))
    exported: list[TraceRecord] = []
    tracer.add_exporter(exported.append, sync=True)
    store = SQLiteStore(tmp_path / "s.db", flush_interval_s=0.02)
    store.attach(tracer)
    try:
        for i in range(200):
            with tracer.start_span(f"t{i}", SpanKind.AGENT):
                with tracer.start_span("step", SpanKind.TOOL):
                    pass
        assert store.flush()
        assert 0 < len(exported) < 200
        assert {r["trace_id"] for r in store.list_traces(limit=500)} == {
            t.trace_id for t in exported
        }
        assert store.count_traces(status="running") == 0
    finally:
        store.close()


def test_an_export_only_store_still_writes_whole_traces(tmp_path: Path, tracer: Tracer) -> None:
    store = SQLiteStore(tmp_path / "e.db", flush_interval_s=0.02)
    tracer.add_exporter(store)
    try:
        with tracer.start_span("agent", SpanKind.AGENT):
            call(tracer)
            assert store.flush()
            assert store.count_traces() == 0  # nothing until it ends
        assert store.flush()
        (row,) = store.list_traces()
        assert row["status"] == "ok" and row["span_count"] == 2
    finally:
        store.close()


def test_status_filters_know_running_and_incomplete(tracer: Tracer, store: SQLiteStore) -> None:
    with tracer.start_span("a", SpanKind.AGENT):
        assert store.flush()
        assert len(store.list_traces(status=["running", SpanStatus.ERROR])) == 1
        assert store.count_traces(status="incomplete") == 0
    with pytest.raises(ValueError, match="status"):
        store.list_traces(status="paused")
