"""A batch never fails as a whole: a trace SQLite rejects is dropped alone, counted, and its
cause logged once; the seal repairs what it can before the store sees it."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentos_obs._internal.guard as _guard
import agentos_obs.store._rows as _store_rows
from agentos_obs.pricing import Usage
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, SpanRecord, SpanStatus, Tracer, TraceRecord

NS = 1_000_000_000
BASE = 1_700_000_000 * NS


def good_traces(count: int) -> list[TraceRecord]:
    tracer = Tracer("app")
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    for i in range(count):
        with tracer.start_span(f"good-{i}", SpanKind.AGENT):
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(llm, model="m", input_tokens=10, output_tokens=1, cost_usd=0.1)
    tracer.remove_exporter(traces.append)
    return traces


def hand_built(trace_id: str, *, name: str = "hostile", usage: Usage | None = None) -> TraceRecord:
    """A trace built by hand, past the seal's repairs (``sanitized=True`` takes the name as
    given): what a buggy producer or a future field could hand the store."""
    record = SpanRecord(
        span_id="0" * 16, trace_id=trace_id, parent_id=None, name=name, kind=SpanKind.LLM,
        status=SpanStatus.OK, start_time=BASE, end_time=BASE + NS, llm_call=usage is not None,
        usage=usage, cost_usd=None, model="m", sanitized=True,
    )  # fmt: skip
    return TraceRecord(trace_id=trace_id, spans=[record], name="hostile", sanitized=True)


HOSTILE: dict[str, Callable[[], TraceRecord]] = {
    # 2**64 input tokens: Python's sqlite3 cannot bind it (OverflowError).
    "int64 overflow": lambda: hand_built("e" * 32, usage=Usage(input_tokens=2**64)),
    # A lone surrogate (a file name read with surrogateescape): not UTF-8.
    "lone surrogate": lambda: hand_built("d" * 32, name="report-\udc80.txt"),
}


def names(store: SQLiteStore) -> set[str]:
    return {row["name"] for row in store.list_traces(limit=10_000)}


@pytest.mark.parametrize("position", [0, 50, 100])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_one_hostile_trace_among_100_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, position: int
) -> None:
    batch = good_traces(100)
    hostile = HOSTILE[kind]()
    batch.insert(position, hostile)
    # One batch of 101 (nothing is written before flush): the case that kept 0 of 101.
    store = SQLiteStore(tmp_path / "t.db", batch_size=1000, flush_interval_s=3600)
    try:
        with caplog.at_level(logging.WARNING, logger="agentos_obs"):
            for trace in batch:
                store.export(trace)
            assert store.flush()  # strict mode: a rejected value is data, not a bug
        assert names(store) == {f"good-{i}" for i in range(100)}
        stats = store.stats()
        assert (stats["written_traces"], stats["dropped_traces"]) == (100, 1)
        assert stats["written_spans"] == 200
        assert _guard.dropped_counts() == {"store": 1}
        assert store.summary()["llm_calls"] == 100  # the good traces' rows are whole
        cause = "OverflowError" if kind == "int64 overflow" else "UnicodeEncodeError"
        lines = [r.getMessage() for r in caplog.records if hostile.trace_id in r.getMessage()]
        assert len(lines) == 1 and cause in lines[0]  # one line naming trace and cause
    finally:
        store.close()


def test_each_batch_keeps_its_good_traces_and_logs_a_cause_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    traces = good_traces(60)
    for i in (3, 17, 18, 44):  # in several batches of 7, two side by side
        traces.insert(i, hand_built(f"{i:032x}", usage=Usage(output_tokens=2**70)))
    store = SQLiteStore(tmp_path / "t.db", batch_size=7, flush_interval_s=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="agentos_obs"):
            for trace in traces:
                store.export(trace)
            assert store.flush()
            # After other drops, a rejection of a new kind still says what happened, once.
            store.export(HOSTILE["lone surrogate"]())
            store.export(HOSTILE["lone surrogate"]())
            assert store.flush()
        assert store.count_traces() == 60
        assert store.stats()["dropped_traces"] == _guard.dropped_counts()["store"] == 6
        messages = [r.getMessage() for r in caplog.records]
        assert sum("OverflowError" in m for m in messages) == 1
        assert sum("UnicodeEncodeError" in m for m in messages) == 1
    finally:
        store.close()


def test_a_row_sqlite_refuses_for_any_reason_is_dropped_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Values of a type SQLite cannot bind, or a NOT NULL column given None."""
    real = _store_rows.span_row

    def poisoned(record: SpanRecord, *args: Any) -> tuple[Any, ...]:
        row = list(real(record, *args))
        if record.name == "good-5":
            row[-2] = ["not", "bindable"]  # ProgrammingError
        if record.name == "good-6":
            row[_store_rows.SPAN_COLUMNS.index("status")] = None  # NOT NULL: IntegrityError
        return tuple(row)

    monkeypatch.setattr(_store_rows, "span_row", poisoned)
    store = SQLiteStore(tmp_path / "t.db", batch_size=1000, flush_interval_s=3600)
    try:
        for trace in good_traces(10):
            store.export(trace)
        assert store.flush()
        assert names(store) == {f"good-{i}" for i in range(10)} - {"good-5", "good-6"}
        assert store.stats()["dropped_traces"] == 2
        conn = sqlite3.connect(store.path)
        try:  # the rejected traces left no spans behind (their savepoint was rolled back)
            orphans = conn.execute(
                "SELECT COUNT(*) FROM spans WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
            ).fetchone()[0]
        finally:
            conn.close()
        assert orphans == 0
    finally:
        store.close()


def test_the_seal_repairs_what_used_to_fail_the_batch(tmp_path: Path) -> None:
    """Through the tracer (the normal path) the same values are repaired: all 101 kept."""
    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "t.db", batch_size=1000, flush_interval_s=3600)
    try:
        for trace in good_traces(99):
            store.export(trace)
        tracer.add_exporter(store)
        with tracer.start_span("huge", SpanKind.LLM) as llm:
            tracer.record_usage(llm, model="m", input_tokens=2**64, output_tokens=1)
        with tracer.start_span("file-\udc80.txt", SpanKind.TOOL, {"path": "a\udcffb"}):
            pass
        assert store.flush()
        assert store.count_traces() == 101 and store.stats()["dropped_traces"] == 0
        huge = store.list_traces(search="huge")[0]
        assert huge["input_tokens"] == 0  # repaired to 0, and said so on the span
        full = store.get_trace(huge["trace_id"])
        assert full is not None
        assert full["spans"][0]["attributes"]["agentos.repaired"] == ["input_tokens"]
        assert "file-\ufffd.txt" in names(store)
    finally:
        store.close()
