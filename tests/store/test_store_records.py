"""SQLite store rows come from sealed records: the record's facts, its trace's rollup, the
one serialiser; counted calls by cost status; rows linear in the depth of a trace."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.attributes as attr
from agentos_obs._internal.jsonsafe import dumps
from agentos_obs.pricing import Usage
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import (
    CostStatus,
    EventRecord,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Tracer,
    TraceRecord,
)

NS = 1_000_000_000
BASE = 1_700_000_000 * NS


class FixedPricing:
    """$1 per 1k input tokens, $2 per 1k output; "mystery" has no price."""

    def cost(self, model: str, usage: Any, provider: str | None = None) -> float | None:
        if model == "mystery":
            return None
        return usage.input_tokens / 1000 + usage.output_tokens / 500


@pytest.fixture
def store(tmp_path: Path) -> Any:
    db = SQLiteStore(tmp_path / "traces.db", flush_interval_s=0.05)
    yield db
    db.close()


def raw(store: SQLiteStore, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(store.path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def span(span_id: str, parent_id: str | None, **facts: Any) -> SpanRecord:
    fields: dict[str, Any] = {
        "trace_id": "ab" * 16,
        "name": span_id,
        "kind": SpanKind.CHAIN,
        "status": SpanStatus.OK,
        "start_time": BASE,
        "end_time": BASE + 10**6,
    }
    fields.update(facts)
    return SpanRecord(span_id=span_id, parent_id=parent_id, **fields)


def test_rows_hold_the_records_facts_not_a_re_derivation(store: SQLiteStore) -> None:
    # Facts no rule would derive from these spans' kinds, attributes and places in the tree:
    # a row that re-derived anything would differ from the record.
    root = span("r0", "f" * 16, kind=SpanKind.AGENT, agent="root-agent")
    call = span(
        "c1", "r0", kind=SpanKind.TOOL,  # a counted call on a tool span
        attributes={attr.LLM_REQUEST_MODEL: "asked-model", attr.LLM_LATENCY_MS: 42.5,
                    attr.AGENT_NAME: "attribute-agent"},
        events=[EventRecord("retry", BASE + 5, {"attempt": 2})],
        llm_call=True, usage=Usage(1000, 200, 300, 40, 50), cost_usd=0.25,
        cost_status=CostStatus.ESTIMATED, model="record-model", provider="record-provider",
        agent="record-agent", user_id="record-user", session_id="record-session",
    )  # fmt: skip
    failed = span(
        "c2", "r0", kind=SpanKind.LLM, status=SpanStatus.ERROR, llm_call=True,
        cost_status=CostStatus.NO_USAGE, model="record-model", agent="record-agent",
    )  # fmt: skip
    plain = span("p3", "c2", kind=SpanKind.LLM, model="shown-model")  # an LLM span, no call
    trace = TraceRecord(
        trace_id="ab" * 16, spans=[root, call, failed, plain], name="hand-built",
        service_name="svc-from-record", remote_parent_id="f" * 16, root_span_id="r0",
        user_id="trace-user", session_id="trace-session", attributes={"k": "v"},
    )  # fmt: skip
    store.export(trace)
    assert store.flush()

    (row,) = raw(store, "SELECT * FROM traces")
    rollup = trace.rollup
    assert row["service_name"] == "svc-from-record"
    assert row["remote_parent_id"] == "f" * 16 and row["root_span_id"] == "r0"
    assert (row["user_id"], row["session_id"]) == ("trace-user", "trace-session")
    assert row["status"] == trace.status.value and row["error_count"] == trace.error_count == 1
    for name in (
        "llm_calls", "unpriced_llm_calls", "no_usage_llm_calls", "estimated_llm_calls",
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
        "reasoning_tokens",
    ):  # fmt: skip
        assert row[name] == getattr(rollup, name), name
    assert (row["llm_calls"], row["no_usage_llm_calls"], row["estimated_llm_calls"]) == (2, 1, 1)
    assert row["cost_usd"] == pytest.approx(rollup.cost_usd) == pytest.approx(0.25)

    spans = {r["span_id"]: r for r in raw(store, "SELECT * FROM spans")}
    stored = spans["c1"]
    assert stored["model_name"] == "record-model" and stored["provider"] == "record-provider"
    assert stored["agent_name"] == "record-agent"
    assert stored["llm_call"] == 1 and stored["counts_usage"] == 1
    assert stored["cost_status"] == "estimated" and stored["cost_usd"] == 0.25
    assert (stored["input_tokens"], stored["output_tokens"]) == (1000, 200)
    assert (stored["cache_read_tokens"], stored["cache_write_tokens"]) == (300, 40)
    assert stored["reasoning_tokens"] == 50
    assert stored["latency_ms"] == call.latency_ms == 42.5
    assert (stored["llm_call"], stored["kind"]) == (1, "tool")
    assert spans["c2"]["cost_status"] == "no_usage" and spans["c2"]["counts_usage"] == 0
    assert spans["c2"]["llm_call"] == 1 and spans["c2"]["cost_usd"] is None
    assert spans["p3"]["llm_call"] == 0 and spans["p3"]["cost_status"] is None
    assert spans["p3"]["model_name"] == "shown-model"
    assert spans["r0"]["agent_name"] == "root-agent"

    # The query API answers the same facts.
    (model,) = [m for m in store.aggregate("model") if m["key"] == "record-model"]
    assert (model["llm_calls"], model["no_usage_llm_calls"], model["estimated_llm_calls"]) == (
        2,
        1,
        1,
    )
    assert model["runs"] == 2 and model["errors"] == 1
    agents = {a["key"]: a for a in store.aggregate("agent")}
    assert agents["record-agent"]["llm_calls"] == 2
    assert agents["record-agent"]["cost_usd"] == pytest.approx(0.25)


def test_attributes_and_events_are_written_by_the_one_serialiser(
    store: SQLiteStore,
) -> None:
    tracer = Tracer("svc", pricing=FixedPricing())  # type: ignore[arg-type]
    tracer.add_exporter(store)
    with tracer.start_trace("t", attributes={"when": "now", "n": 3}):
        with tracer.start_span("odd", SpanKind.CHAIN) as live:
            live.set_attributes(
                {"text": "caf\u00e9 \u2603", "big": 2**70, "nan": float("nan"),
                 "list": [1, 2], "nested": {"a": [1, {"b": None}]}, "bad": "x\udc80y"}
            )  # fmt: skip
            live.add_event("note", {"inf": float("inf"), "ok": True})
    assert store.flush()
    record = live.record
    assert record is not None
    (row,) = raw(store, "SELECT attributes, events FROM spans")
    assert row["attributes"] == dumps(record.attributes)
    assert row["events"] == dumps([e.to_dict() for e in record.events])
    (trace_row,) = raw(store, "SELECT attributes FROM traces")
    assert trace_row["attributes"] == dumps({"when": "now", "n": 3})
    stored = store.get_trace(record.trace_id)
    assert stored is not None
    (got,) = stored["spans"]
    assert got["attributes"]["bad"] == "x\ufffdy" and got["attributes"]["list"] == [1, 2]


def test_every_call_counts_and_each_cost_status_is_summed(
    store: SQLiteStore,
) -> None:
    """One good and one failed call: 2 calls (issue 10's case), with priced, unpriced,
    estimated and no-usage calls counted alike by the trace row, summary, aggregates and
    the record's own rollup."""
    tracer = Tracer("svc", pricing=FixedPricing())  # type: ignore[arg-type]
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    tracer.add_exporter(store)
    with tracer.start_trace("mixed", attributes={"user.id": "ann"}):
        with tracer.start_span("planner", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("good", SpanKind.LLM) as good:
                tracer.record_usage(good, model="gpt-4o", input_tokens=1000, output_tokens=500)
            with pytest.raises(RuntimeError):
                with tracer.start_span("bad", SpanKind.LLM, {"llm.request_model": "gpt-4o"}):
                    raise RuntimeError("rate limited")
            with tracer.start_span("mystery", SpanKind.LLM) as unpriced:
                tracer.record_usage(unpriced, model="mystery", input_tokens=10, output_tokens=1)
            with tracer.start_span("guessed", SpanKind.LLM) as estimated:
                estimated.set_attribute(attr.LLM_USAGE_ESTIMATED, True)
                tracer.record_usage(estimated, model="gpt-4o", input_tokens=100, output_tokens=0)
    assert store.flush()
    (record,) = traces
    rollup = record.rollup
    assert (rollup.llm_calls, rollup.unpriced_llm_calls) == (4, 1)
    assert (rollup.no_usage_llm_calls, rollup.estimated_llm_calls) == (1, 1)

    statuses = dict(
        (r["name"], r["cost_status"]) for r in raw(store, "SELECT name, cost_status FROM spans")
    )
    assert statuses == {
        "planner": None, "good": "priced", "bad": "no_usage", "mystery": "unpriced",
        "guessed": "estimated",
    }  # fmt: skip

    def counts(row: dict[str, Any]) -> tuple[int, int, int, int]:
        return (
            row["llm_calls"],
            row["unpriced_llm_calls"],
            row["no_usage_llm_calls"],
            row["estimated_llm_calls"],
        )

    expected = (4, 1, 1, 1)
    (listed,) = store.list_traces()
    assert counts(listed) == expected
    summary = store.summary()
    assert counts(summary) == expected
    assert summary["total_cost_usd"] == pytest.approx(rollup.cost_usd)
    assert summary["input_tokens"] == rollup.input_tokens == 1110
    for by in ("agent", "user", "day"):
        (group,) = store.aggregate(by)
        assert counts(group) == expected, by
        assert group["cost_usd"] == pytest.approx(rollup.cost_usd), by
        assert group["input_tokens"] == rollup.input_tokens, by
    models = {m["key"]: m for m in store.aggregate("model")}
    assert counts(models["gpt-4o"]) == (3, 0, 1, 1)
    assert counts(models["mystery"]) == (1, 1, 0, 0)
    by_model = record.by_model()
    assert models["gpt-4o"]["llm_calls"] == by_model["gpt-4o"].llm_calls
    assert models["gpt-4o"]["cost_usd"] == pytest.approx(by_model["gpt-4o"].cost_usd)
    usage = store.usage_rows()
    assert sorted(r["cost_status"] for r in usage) == ["estimated", "priced", "unpriced"]
    stored = store.get_trace(record.trace_id)
    assert stored is not None
    assert {s["name"]: s["cost_status"] for s in stored["spans"]} == statuses


def chain_trace(depth: int) -> TraceRecord:
    """A trace of ``depth`` nested spans (each the child of the last), an LLM call at the
    bottom, inside an agent at the top, sealed by a real tracer."""
    tracer = Tracer("deep", pricing=FixedPricing())  # type: ignore[arg-type]
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    top = tracer.begin_span("top", SpanKind.AGENT, attributes={"agent.name": "deep-agent"})
    chain = [top]
    for i in range(depth - 2):
        chain.append(tracer.begin_span(f"step-{i}", SpanKind.CHAIN, parent=chain[-1]))
    call = tracer.begin_span("chat", SpanKind.LLM, parent=chain[-1])
    tracer.record_usage(call, model="gpt-4o", input_tokens=10, output_tokens=1)
    chain.append(call)
    for live in reversed(chain):
        tracer.end_span(live)
    (trace,) = traces
    assert len(trace.spans) == depth
    return trace


def store_seconds(tmp_path: Path, trace: TraceRecord, name: str) -> float:
    """Best of 3: from export to committed (flush returned), in a fresh store each time."""
    best = float("inf")
    for attempt in range(3):
        db = SQLiteStore(tmp_path / f"{name}-{attempt}.db", flush_interval_s=0.01)
        try:
            start = time.perf_counter()
            db.export(trace)
            assert db.flush(timeout_s=120)
            best = min(best, time.perf_counter() - start)
            assert db.stats()["written_spans"] == len(trace.spans)
        finally:
            db.close()
    return best


def test_rows_of_a_deep_trace_cost_time_linear_in_its_depth(tmp_path: Path) -> None:
    shallow, deep = chain_trace(500), chain_trace(5_000)
    store_seconds(tmp_path, shallow, "warm")  # imports, first connection
    small = store_seconds(tmp_path, shallow, "d500")
    large = store_seconds(tmp_path, deep, "d5000")
    # 10x the depth: ~10x the time if linear, ~100x if each span walked its ancestors.
    # A loose guard (the machine is shared), not a benchmark.
    assert large / small < 30, f"depth 500: {small * 1e3:.1f} ms, 5000: {large * 1e3:.1f} ms"
    with SQLiteStore.open_readonly(tmp_path / "d5000-0.db") as db:
        stored = db.get_trace(deep.trace_id)
        assert stored is not None
        assert {s["agent_name"] for s in stored["spans"]} == {"deep-agent"}
        assert stored["llm_calls"] == 1
