"""Upgrading a span store written by the previous release (schema version 1): every trace
kept, cost status and the new trace counters derived from what version 1 stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.store._schema as _store_schema
from agentos_obs.errors import ConfigurationError
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer, TraceRecord

NS = 1_000_000_000
BASE = 1_700_000_000 * NS

# The DDL of release schema version 1, verbatim: the test must not follow later edits.
V1_DDL = """
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', service_name TEXT,
    start_time INTEGER NOT NULL, end_time INTEGER, duration_ms REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL, root_span_id TEXT, root_kind TEXT, remote_parent_id TEXT,
    user_id TEXT, session_id TEXT, span_count INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0, llm_calls INTEGER NOT NULL DEFAULT 0,
    unpriced_llm_calls INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0, attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT,
    name TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, status TEXT NOT NULL,
    start_time INTEGER NOT NULL, end_time INTEGER, duration_ms REAL NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL DEFAULT 0, model_name TEXT, provider TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL,
    counts_usage INTEGER NOT NULL DEFAULT 0, llm_call INTEGER NOT NULL DEFAULT 0,
    agent_name TEXT, attributes TEXT NOT NULL DEFAULT '{}', events TEXT NOT NULL DEFAULT '[]',
    UNIQUE (trace_id, span_id)
);
CREATE INDEX traces_by_start ON traces (start_time);
CREATE INDEX traces_by_status ON traces (status, start_time);
CREATE INDEX traces_by_user ON traces (user_id, start_time);
CREATE INDEX traces_by_session ON traces (session_id, start_time);
CREATE INDEX traces_by_cost ON traces (cost_usd);
CREATE INDEX traces_by_duration ON traces (duration_ms);
CREATE INDEX spans_usage_by_start ON spans (start_time) WHERE counts_usage = 1;
CREATE INDEX spans_calls_by_start ON spans (start_time) WHERE llm_call = 1;
CREATE INDEX spans_agents_by_start ON spans (start_time) WHERE kind = 'agent';
CREATE INDEX spans_by_model ON spans (model_name, trace_id) WHERE model_name IS NOT NULL;
CREATE INDEX spans_by_agent ON spans (agent_name, trace_id) WHERE kind = 'agent';
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL
);
INSERT INTO schema_migrations VALUES (1, 'traces and spans with the indexes of the query API', 0);
"""

T1, T2, T3 = "1" * 32, "2" * 32, "3" * 32
# (trace, span, parent, name, kind, status, model, in, out, cost, counts_usage, llm_call, agent)
V1_SPANS = [
    (T1, "a1", None, "planner", "agent", "error", None, 0, 0, None, 0, 0, "planner"),
    (T1, "p1", "a1", "priced", "llm", "ok", "gpt-4o", 1000, 100, 1.2, 1, 1, "planner"),
    (T1, "u1", "a1", "unpriced", "llm", "ok", "mystery", 50, 5, None, 1, 1, "planner"),
    (T1, "f1", "a1", "failed", "llm", "error", "gpt-4o", 0, 0, None, 0, 1, "planner"),
    (T1, "t1", "a1", "tool", "tool", "ok", None, 0, 0, None, 0, 0, "planner"),
    (T2, "c2", None, "job", "chain", "ok", None, 0, 0, None, 0, 0, None),
    (T3, "f3", None, "lonely-failure", "llm", "timeout", "gpt-4o", 0, 0, None, 0, 1, None),
    (T3, "f4", "f3", "retry-failure", "llm", "error", "gpt-4o", 0, 0, None, 0, 1, None),
]
# What the release wrote for these traces: llm_calls counted calls with usage only.
V1_TRACES = [
    # (trace, name, start, status, root, spans, errors, calls, unpriced, in, out, cost, attrs)
    (T1, "research", BASE, "error", "a1", 5, 2, 2, 1, 1050, 105, 1.2, '{"x":NaN}'),
    (T2, "job", BASE + NS, "ok", "c2", 1, 0, 0, 0, 0, 0, 0.0, "{}"),
    (T3, "lonely", BASE + 2 * NS, "timeout", "f3", 2, 2, 0, 0, 0, 0, 0.0, '{"y":1}'),
]


def write_v1_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(V1_DDL)
        for (
            t,
            name,
            start,
            status,
            root,
            spans,
            errors,
            calls,
            unpriced,
            i,
            o,
            cost,
            a,
        ) in V1_TRACES:
            conn.execute(
                "INSERT INTO traces (trace_id, name, service_name, start_time, end_time, "
                "duration_ms, status, root_span_id, root_kind, user_id, span_count, "
                "error_count, llm_calls, unpriced_llm_calls, input_tokens, output_tokens, "
                "cost_usd, attributes) VALUES (?, ?, 'old-svc', ?, ?, 5.0, ?, ?, 'agent', "
                "'ann', ?, ?, ?, ?, ?, ?, ?, ?)",
                (t, name, start, start + 5 * 10**6, status, root, spans, errors, calls,
                 unpriced, i, o, cost, a),
            )  # fmt: skip
        for n, (
            t,
            s,
            parent,
            name,
            kind,
            status,
            model,
            i,
            o,
            cost,
            counts,
            call,
            agent,
        ) in enumerate(V1_SPANS):
            conn.execute(
                "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, status, "
                "start_time, end_time, duration_ms, latency_ms, model_name, input_tokens, "
                "output_tokens, cost_usd, counts_usage, llm_call, agent_name, attributes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1.0, 1.0, ?, ?, ?, ?, ?, ?, ?, '{\"k\":1}')",
                (t, s, parent, name, kind, status, BASE + n, BASE + n + 10**6, model, i, o,
                 cost, counts, call, agent),
            )  # fmt: skip
    finally:
        conn.close()


def rows_of(path: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_a_release_v1_store_upgrades_keeping_every_trace(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_v1_file(path)
    v1_columns = ", ".join(
        c for c in (r["name"] for r in rows_of(path, "PRAGMA table_info(spans)"))
    )
    spans_before = rows_of(path, f"SELECT {v1_columns} FROM spans ORDER BY span_id")
    traces_before = rows_of(path, "SELECT * FROM traces ORDER BY trace_id")

    # Read-only code does not migrate: it says how to.
    with pytest.raises(ConfigurationError, match="open it once for writing"):
        SQLiteStore.open_readonly(path)

    with SQLiteStore(path) as store:
        assert store.schema_version == _store_schema.SCHEMA_VERSION >= 2
        assert store.count_traces() == 3

    # Every old row is still there, unchanged in every column version 1 had...
    assert rows_of(path, f"SELECT {v1_columns} FROM spans ORDER BY span_id") == spans_before
    traces_after = rows_of(path, "SELECT * FROM traces ORDER BY trace_id")
    for before, after in zip(traces_before, traces_after, strict=True):
        changed = {k for k in before if before[k] != after[k]}
        assert changed <= {"llm_calls"}, changed
    # ...but llm_calls, which now counts every call, failed ones too.
    calls = {t["trace_id"]: t for t in traces_after}
    assert [calls[t]["llm_calls"] for t in (T1, T2, T3)] == [3, 0, 2]

    # The cost status of each old call, from what version 1 stored.
    statuses = {r["span_id"]: r["cost_status"] for r in rows_of(path, "SELECT * FROM spans")}
    assert statuses == {
        "a1": None, "p1": "priced", "u1": "unpriced", "f1": "no_usage", "t1": None,
        "c2": None, "f3": "no_usage", "f4": "no_usage",
    }  # fmt: skip
    counters = {
        t["trace_id"]: (t["unpriced_llm_calls"], t["no_usage_llm_calls"], t["estimated_llm_calls"])
        for t in traces_after
    }
    assert counters == {T1: (1, 1, 0), T2: (0, 0, 0), T3: (0, 2, 0)}

    with SQLiteStore.open_readonly(path) as store:
        summary = store.summary()
        assert summary["trace_count"] == 3 and summary["llm_calls"] == 5
        assert summary["no_usage_llm_calls"] == 3 and summary["unpriced_llm_calls"] == 1
        assert summary["estimated_llm_calls"] == 0
        assert summary["total_cost_usd"] == pytest.approx(1.2)
        models = {m["key"]: m for m in store.aggregate("model")}
        gpt = models["gpt-4o"]
        assert (gpt["llm_calls"], gpt["no_usage_llm_calls"], gpt["runs"]) == (4, 3, 4)
        assert gpt["input_tokens"] == 1000 and gpt["cost_usd"] == pytest.approx(1.2)
        (user,) = store.aggregate("user")
        assert (user["llm_calls"], user["no_usage_llm_calls"]) == (5, 3)
        assert [r["cost_status"] for r in store.usage_rows()] == ["priced", "unpriced"]


def test_new_traces_merge_into_an_upgraded_file(tmp_path: Path) -> None:
    """A part of an old trace arriving after the upgrade (a distributed trace): counters
    add up, and the old attributes SQLite's JSON rejects (NaN) do not fail the write."""
    path = tmp_path / "old.db"
    write_v1_file(path)
    tracer = Tracer("new-svc")
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    part = tracer.begin_span("worker", SpanKind.AGENT, trace_id=T1, parent_id="a1")
    chat = tracer.begin_span(
        "chat", SpanKind.LLM, parent=part, attributes={"llm.request_model": "gpt-4o"}
    )
    tracer.end_span(chat, error=RuntimeError("down"))
    tracer.end_span(part)
    (record,) = traces
    assert record.rollup.no_usage_llm_calls == 1
    with SQLiteStore(path) as store:
        store.export(record)
        assert store.flush()
        assert store.stats()["written_traces"] == 1 and store.stats()["dropped_traces"] == 0
        row = store.get_trace(T1)
        assert row is not None
        assert row["name"] == "research"  # the old root still names the trace
        assert row["span_count"] == 7 and row["llm_calls"] == 4
        assert row["no_usage_llm_calls"] == 2 and row["unpriced_llm_calls"] == 1
        assert {s["name"] for s in row["spans"]} >= {"planner", "worker", "chat"}
