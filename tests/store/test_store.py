"""SQLite store: round trip, filters, SQL aggregates and percentiles, retention, schema."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentos_obs.store._schema as _store_schema
import agentos_obs.store._writer as store_module
from agentos_obs.errors import ConfigurationError
from agentos_obs.store import SQLiteStore, default_db_path
from agentos_obs.tracing import Span, SpanKind, SpanRecord, SpanStatus, Tracer, TraceRecord
from conftest import flat_pricing

NS = 1_000_000_000
BASE = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z


@pytest.fixture
def store(tmp_path: Path) -> Any:
    db = SQLiteStore(tmp_path / "traces.db", flush_interval_s=0.05)
    yield db
    db.close()


def collect(tracer: Tracer) -> list[TraceRecord]:
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    return traces


def respan(record: SpanRecord, **changes: Any) -> SpanRecord:
    """``record`` with some fields changed, through the public constructor."""
    fields = {
        name: getattr(record, name)
        for name in (
            "span_id", "trace_id", "parent_id", "name", "kind", "status", "start_time",
            "end_time", "duration_ms", "attributes", "events", "llm_call", "usage", "cost_usd",
            "cost_status", "model", "provider", "user_id", "session_id", "agent",
        )
    }  # fmt: skip
    fields.update(changes)
    return SpanRecord(**fields, sanitized="attributes" not in changes)


def retrace(trace: TraceRecord, **changes: Any) -> TraceRecord:
    """``trace`` rebuilt from its records, its times taken from its spans (tests pin span
    times; the trace's own clock is the wall clock), with some fields changed."""
    root = trace.root_span
    fields: dict[str, Any] = {
        "trace_id": trace.trace_id,
        "spans": trace.spans,
        "name": trace.name,
        "service_name": trace.service_name,
        "attributes": trace.attributes,
        "root_span_id": root.span_id if root is not None else None,
        "status": trace.status,
        "user_id": trace.user_id,
        "session_id": trace.session_id,
        "remote_parent_id": trace.remote_parent_id,
    }
    fields.update(changes)
    return TraceRecord(**fields, sanitized=True)


def timed(tracer: Tracer, name: str, kind: SpanKind, start: int, ms: float, **kw: Any) -> Span:
    """A span begun at ``start`` (epoch ns) in the current context, to be ended with end()."""
    return tracer.begin_span(name, kind, start_time=start, **kw)


def end(tracer: Tracer, span: Span, start: int, ms: float, **kw: Any) -> None:
    tracer.end_span(span, end_time=start + int(ms * 1e6), **kw)


def llm_trace(
    tracer: Tracer,
    *,
    start: int = BASE,
    model: str = "gpt-4o",
    ms: float = 100.0,
    input_tokens: int = 100,
    output_tokens: int = 10,
    user: str | None = None,
    agent: str | None = None,
    status: SpanStatus | None = None,
) -> TraceRecord:
    """One trace: [agent >] llm, with exact times. Returns the finished trace's record."""
    traces = collect(tracer)
    attributes = {"user.id": user} if user else None
    root = None
    if agent:
        root = tracer.begin_span(agent, SpanKind.AGENT, start_time=start, attributes=attributes)
    llm = tracer.begin_span(
        "chat", SpanKind.LLM, parent=root, start_time=start, attributes=None if root else attributes
    )
    tracer.record_usage(llm, model=model, input_tokens=input_tokens, output_tokens=output_tokens)
    tracer.end_span(llm, end_time=start + int(ms * 1e6), status=status)
    if root is not None:
        tracer.end_span(root, end_time=start + int(ms * 1e6) + 1000, status=status)
    tracer.remove_exporter(traces.append)
    (trace,) = traces
    return retrace(trace)  # the spans' clock, pinned for time filters


def nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


# -- round trip ---------------------------------------------------------------------------


def test_trace_round_trip_keeps_tree_usage_attributes_and_events(
    tracer: Tracer, store: SQLiteStore
) -> None:
    tracer.add_exporter(store)
    with tracer.start_trace("research", attributes={"user.id": "u1", "session.id": "s1"}) as trace:
        with tracer.start_span("planner", SpanKind.AGENT) as agent:
            with tracer.start_span("chat", SpanKind.LLM, {"llm.request_model": "gpt-4o"}) as llm:
                tracer.record_usage(
                    llm, model="gpt-4o-2024-08-06", provider="openai", input_tokens=1200,
                    output_tokens=300, cache_read_tokens=200, reasoning_tokens=50,
                )  # fmt: skip
                llm.add_event("retry", {"attempt": 2})
            with pytest.raises(TimeoutError):
                with tracer.start_span("search", SpanKind.TOOL, {"tool.name": "search"}):
                    raise TimeoutError("too slow")
    assert store.flush()

    (row,) = store.list_traces()
    totals = trace.usage_totals()
    assert row["trace_id"] == trace.trace_id
    assert row["name"] == "research"
    assert row["service_name"] == "svc"
    assert row["status"] == "error"
    assert (row["user_id"], row["session_id"]) == ("u1", "s1")
    assert row["span_count"] == 3 and row["error_count"] == 1
    assert row["root_kind"] == "agent" and row["root_span_id"] == agent.span_id
    assert row["input_tokens"] == totals["input_tokens"] == 1200
    assert row["output_tokens"] == 300 and row["cache_read_tokens"] == 200
    assert row["reasoning_tokens"] == 50 and row["total_tokens"] == 1500
    assert row["cost_usd"] == pytest.approx(totals["cost_usd"]) == pytest.approx(1.8)
    assert row["llm_calls"] == 1 and row["unpriced_llm_calls"] == 0
    assert row["models"] == ["gpt-4o-2024-08-06"] and row["agents"] == ["planner"]
    assert row["start_time"] == trace.start_time and row["end_time"] == trace.end_time
    assert row["duration_ms"] == pytest.approx(trace.total_duration_ms)
    assert row["attributes"] == {"user.id": "u1", "session.id": "s1"}

    full = store.get_trace(trace.trace_id)
    assert full is not None
    spans = {s["name"]: s for s in full["spans"]}
    assert spans["planner"]["parent_id"] is None
    assert spans["chat"]["parent_id"] == agent.span_id
    assert spans["search"]["parent_id"] == agent.span_id
    chat = spans["chat"]
    assert chat["span_id"] == llm.span_id and chat["kind"] == "llm"
    assert chat["provider"] == "openai" and chat["model_name"] == "gpt-4o-2024-08-06"
    assert chat["counts_usage"] and chat["llm_call"]
    assert chat["agent_name"] == "planner"
    assert chat["attributes"]["llm.request_model"] == "gpt-4o"
    assert chat["events"] == [
        {"name": "retry", "timestamp": llm.events[0].timestamp, "attributes": {"attempt": 2}}
    ]
    assert (chat["start_time"], chat["end_time"]) == (llm.start_time, llm.end_time)
    search = spans["search"]
    assert search["status"] == "error"
    assert search["attributes"]["error.type"] == "TimeoutError"
    assert search["events"][0]["name"] == "exception"
    assert not search["counts_usage"] and not search["llm_call"]


def test_get_trace_accepts_a_unique_prefix_only(tracer: Tracer, store: SQLiteStore) -> None:
    first = llm_trace(tracer)
    store.export(first)
    store.flush()
    assert store.get_trace(first.trace_id[:8])["trace_id"] == first.trace_id  # type: ignore[index]
    assert store.get_trace(first.trace_id.upper())["trace_id"] == first.trace_id  # type: ignore[index]
    assert store.get_trace("f" * 32 if not first.trace_id.startswith("f") else "0" * 32) is None
    assert store.get_trace("") is None
    # An ambiguous prefix matches nothing rather than an arbitrary trace.
    twin = llm_trace(tracer)
    twin_id = first.trace_id[:8] + "0" * 24
    twin = retrace(twin, trace_id=twin_id, spans=[respan(s, trace_id=twin_id) for s in twin.spans])
    store.export(twin)
    store.flush()
    assert store.get_trace(first.trace_id[:8]) is None


def test_odd_attribute_values_are_stored_not_lost(tracer: Tracer, store: SQLiteStore) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with tracer.start_span("odd", SpanKind.CHAIN) as span:
        span.set_attributes({"obj": Opaque(), "set": {1}, "nan": float("nan"), "big": 2**70})
        span.add_event("weird", {"cycle": cyclic})
        span.attributes[(1, 2)] = "tuple key"  # type: ignore[index]
    store.export(span.trace)  # type: ignore[arg-type]  # a live, ended trace: its record
    assert store.flush()
    stored = store.get_trace(span.trace_id)
    assert stored is not None
    record = span.record
    assert record is not None
    attributes = stored["spans"][0]["attributes"]
    # What the seal made of them, exactly: text for the object, int64 overflow and NaN.
    assert attributes == record.to_dict()["attributes"]
    assert attributes["big"] == str(2**70) and attributes["nan"] == "NaN"
    assert "Opaque" in attributes["obj"] and attributes["(1, 2)"] == "tuple key"
    (event,) = stored["spans"][0]["events"]
    assert event == record.events[0].to_dict()  # the cycle survived as text


def test_tracer_exports_reach_the_store_from_threads_and_tasks(
    tracer: Tracer, store: SQLiteStore
) -> None:
    tracer.add_exporter(store)
    ids: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for _ in range(n):
            with tracer.start_span("job", SpanKind.CHAIN) as span:
                with tracer.start_span("chat", SpanKind.LLM) as llm:
                    tracer.record_usage(llm, model="gpt-4o", input_tokens=10, output_tokens=1)
            with lock:
                ids.append(span.trace_id)

    threads = [threading.Thread(target=work, args=(40,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def one() -> str:
        with tracer.start_span("task", SpanKind.AGENT) as span:
            await asyncio.sleep(0)
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(llm, model="gpt-4o", input_tokens=10, output_tokens=1)
        return span.trace_id

    async def many() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(100)))

    ids.extend(asyncio.run(many()))
    assert store.flush()
    assert store.count_traces() == len(ids) == 340
    assert {row["trace_id"] for row in store.list_traces(limit=1000)} == set(ids)
    # Each trace's LLM span sits under its own root: contexts did not leak across tasks.
    sample = store.get_trace(ids[-1])
    assert sample is not None
    root = next(s for s in sample["spans"] if s["parent_id"] is None)
    assert [s["parent_id"] for s in sample["spans"] if s["kind"] == "llm"] == [root["span_id"]]
    assert store.stats()["written_traces"] == 340


# -- filters ------------------------------------------------------------------------------


@pytest.fixture
def populated(tracer: Tracer, store: SQLiteStore) -> SQLiteStore:
    """Six traces an hour apart with different models, agents, users, costs and statuses."""
    plans = [
        dict(model="gpt-4o", user="alice", agent="planner", input_tokens=1000, ms=100),
        dict(model="claude-3-5-sonnet", user="bob", agent="writer", input_tokens=2000, ms=900),
        dict(model="gpt-4o", user="alice", agent=None, input_tokens=10, ms=50),
        dict(model="mystery", user="carol", agent="planner", input_tokens=500, ms=300),
        dict(
            model="gpt-4o", user="bob", agent="planner", input_tokens=100, ms=2500,
            status=SpanStatus.ERROR,
        ),
        dict(
            model="claude-3-5-sonnet", user=None, agent="writer", input_tokens=50, ms=20,
            status=SpanStatus.TIMEOUT,
        ),
    ]  # fmt: skip
    for i, plan in enumerate(plans):
        store.export(llm_trace(tracer, start=BASE + i * 3600 * NS, **plan))  # type: ignore[arg-type]
    assert store.flush()
    return store


def names(rows: list[dict[str, Any]]) -> list[tuple[str | None, float]]:
    return [(r["user_id"], r["duration_ms"]) for r in rows]


def test_list_traces_filters(populated: SQLiteStore) -> None:
    s = populated
    assert s.count_traces() == 6
    newest_first = s.list_traces()
    assert [r["start_time"] for r in newest_first] == sorted(
        (r["start_time"] for r in newest_first), reverse=True
    )
    assert {r["user_id"] for r in s.list_traces(user="alice")} == {"alice"}
    assert len(s.list_traces(user="alice")) == 2
    assert {tuple(r["models"]) for r in s.list_traces(model="gpt-4o")} == {("gpt-4o",)}
    assert len(s.list_traces(model="gpt-4o")) == 3
    assert len(s.list_traces(agent="planner")) == 3
    assert all(r["agents"] == ["planner"] for r in s.list_traces(agent="planner"))
    assert [r["status"] for r in s.list_traces(status="error")] == ["error"]
    assert {r["status"] for r in s.list_traces(status=["error", SpanStatus.TIMEOUT])} == {
        "error",
        "timeout",
    }
    assert all(r["duration_ms"] >= 900 for r in s.list_traces(min_duration_ms=900))
    assert len(s.list_traces(min_duration_ms=900)) == 2
    # Costs: input/1000 + 10 output/500 -> 2.02 (bob, claude), 1.02 (alice, gpt-4o)
    assert [r["user_id"] for r in s.list_traces(min_cost=1.0, order_by="cost_usd")] == [
        "bob",
        "alice",
    ]
    assert s.list_traces(user="nobody") == []
    with pytest.raises(ValueError, match="status"):
        s.list_traces(status="exploded")
    with pytest.raises(ValueError, match="order_by"):
        s.list_traces(order_by="name; DROP TABLE traces")


def test_list_traces_time_window_and_paging(populated: SQLiteStore) -> None:
    s = populated
    since = datetime.fromtimestamp(BASE / NS, tz=timezone.utc) + timedelta(hours=2)
    until = since + timedelta(hours=2)
    window = s.list_traces(since=since, until=until)
    assert [r["start_time"] for r in window] == [BASE + 3 * 3600 * NS, BASE + 2 * 3600 * NS]
    # Epoch seconds, epoch ns (a row's own start_time) and naive datetimes (UTC) agree.
    assert s.list_traces(since=BASE / NS + 2 * 3600, until=BASE / NS + 4 * 3600) == window
    assert s.list_traces(since=window[-1]["start_time"], until=until) == window
    assert s.list_traces(since=since.replace(tzinfo=None), until=until.replace(tzinfo=None)) == (
        window
    )
    assert s.count_traces(since=since, until=until) == 2
    assert s.list_traces(since=timedelta(days=1)) == []  # the fixture data is from 2023
    page1 = s.list_traces(limit=4)
    page2 = s.list_traces(limit=4, offset=4)
    assert len(page1) == 4 and len(page2) == 2
    assert {r["trace_id"] for r in page1}.isdisjoint(r["trace_id"] for r in page2)
    slowest = s.list_traces(order_by="duration_ms", limit=1)
    assert slowest[0]["duration_ms"] == max(r["duration_ms"] for r in s.list_traces())
    with pytest.raises(TypeError):
        s.list_traces(since="yesterday")  # type: ignore[arg-type]


def test_search_matches_names_ids_users_and_escapes_wildcards(
    populated: SQLiteStore, tracer: Tracer
) -> None:
    s = populated
    assert len(s.list_traces(search="claude")) == 2  # a span's model
    assert len(s.list_traces(search="plan")) == 3  # an agent span's name
    assert len(s.list_traces(search="car")) == 1  # a user
    some = s.list_traces(limit=1)[0]["trace_id"]
    assert [r["trace_id"] for r in s.list_traces(search=some[4:20])] == [some]
    # LIKE wildcards in the search text are literal characters.
    assert s.list_traces(search="%") == []
    assert s.list_traces(search="_") == []
    with tracer.start_span("100%_done", SpanKind.CHAIN) as span:
        pass
    s.export(span.trace)  # type: ignore[arg-type]
    s.flush()
    assert [r["name"] for r in s.list_traces(search="0%_d")] == ["100%_done"]


# -- aggregates ---------------------------------------------------------------------------


def test_aggregate_by_model_sums_usage_and_counts_failed_calls(populated: SQLiteStore) -> None:
    rows = {r["key"]: r for r in populated.aggregate("model")}
    assert set(rows) == {"gpt-4o", "claude-3-5-sonnet", "mystery"}
    gpt = rows["gpt-4o"]
    assert gpt["llm_calls"] == 3 and gpt["runs"] == 3 and gpt["traces"] == 3
    assert gpt["input_tokens"] == 1110 and gpt["output_tokens"] == 30
    assert gpt["cost_usd"] == pytest.approx(1.11 + 0.06)
    assert gpt["errors"] == 1 and gpt["error_rate"] == pytest.approx(1 / 3)
    # Percentiles come from DDSketch bins: within 1 % of nearest rank.
    assert gpt["latency_p50_ms"] == pytest.approx(100, rel=0.01)
    assert gpt["latency_p99_ms"] == pytest.approx(2500, rel=0.01)
    mystery = rows["mystery"]
    assert mystery["unpriced_llm_calls"] == 1 and mystery["cost_usd"] == 0.0
    assert next(iter(rows)) == "claude-3-5-sonnet"  # sorted by cost


def test_aggregate_by_agent_user_and_day(populated: SQLiteStore) -> None:
    agents = {r["key"]: r for r in populated.aggregate("agent")}
    assert agents["planner"]["runs"] == 3 and agents["planner"]["llm_calls"] == 3
    assert agents["planner"]["errors"] == 1
    assert agents["writer"]["errors"] == 1  # the timeout
    assert agents[None]["runs"] == 0 and agents[None]["llm_calls"] == 1  # a call outside agents
    users = {r["key"]: r for r in populated.aggregate("user")}
    assert users["bob"]["runs"] == 2 and users["bob"]["input_tokens"] == 2100
    assert users[None]["runs"] == 1
    days = populated.aggregate("day")
    assert [d["key"] for d in days] == ["2023-11-14", "2023-11-15"]
    assert sum(d["runs"] for d in days) == 6
    assert sum(d["cost_usd"] for d in days) == pytest.approx(
        sum(r["cost_usd"] for r in populated.list_traces())
    )
    window = populated.aggregate("user", since=BASE + 4 * 3600 * NS, until=BASE + 5 * 3600 * NS)
    assert [(r["key"], r["runs"]) for r in window] == [("bob", 1)]
    with pytest.raises(ValueError, match="by must be one of"):
        populated.aggregate("planet")


def test_agent_costs_go_to_the_innermost_agent(tracer: Tracer, store: SQLiteStore) -> None:
    tracer.add_exporter(store)
    with tracer.start_span("boss", SpanKind.AGENT):
        with tracer.start_span("researcher", SpanKind.AGENT, {"agent.name": "research-bot"}):
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(llm, model="gpt-4o", input_tokens=1000, output_tokens=0)
        with tracer.start_span("chat", SpanKind.LLM) as llm:
            tracer.record_usage(llm, model="gpt-4o", input_tokens=3000, output_tokens=0)
    store.flush()
    rows = {r["key"]: r for r in store.aggregate("agent")}
    assert rows["research-bot"]["cost_usd"] == pytest.approx(1.0)
    assert rows["boss"]["cost_usd"] == pytest.approx(3.0)
    assert rows["boss"]["runs"] == rows["research-bot"]["runs"] == 1


def test_usage_is_counted_once_when_an_outer_span_repeats_it(
    tracer: Tracer, store: SQLiteStore
) -> None:
    # LlamaIndex achat > chat: both spans carry the same usage; only the inner one counts.
    tracer.add_exporter(store)
    with tracer.start_span("achat", SpanKind.LLM) as outer:
        with tracer.start_span("chat", SpanKind.LLM) as inner:
            tracer.record_usage(inner, model="gpt-4o", input_tokens=100, output_tokens=10)
        tracer.record_usage(outer, model="gpt-4o", input_tokens=100, output_tokens=10)
    store.flush()
    (row,) = store.list_traces()
    assert row["input_tokens"] == 100 and row["llm_calls"] == 1
    (usage,) = store.usage_rows()
    assert usage["span_id"] == inner.span_id
    (model,) = store.aggregate("model")
    assert model["llm_calls"] == 1 and model["runs"] == 1 and model["input_tokens"] == 100


def test_a_failed_llm_call_without_usage_is_a_call_a_run_and_an_error(
    tracer: Tracer, store: SQLiteStore
) -> None:
    tracer.add_exporter(store)
    with pytest.raises(RuntimeError):
        with tracer.start_span("chat", SpanKind.LLM, {"llm.request_model": "gpt-4o"}):
            raise RuntimeError("rate limited")
    store.flush()
    (model,) = store.aggregate("model")
    assert model["key"] == "gpt-4o"
    assert (model["runs"], model["errors"], model["llm_calls"]) == (1, 1, 1)
    assert model["no_usage_llm_calls"] == 1 and model["unpriced_llm_calls"] == 0
    assert model["cost_usd"] == 0.0 and model["input_tokens"] == 0
    (row,) = store.list_traces()
    assert (row["llm_calls"], row["no_usage_llm_calls"]) == (1, 1)
    assert store.usage_rows() == []  # nothing to re-price


def test_caller_measured_latency_is_used_for_llm_percentiles(
    tracer: Tracer, store: SQLiteStore
) -> None:
    tracer.add_exporter(store)
    for ms in (120.0, 80.0, 400.0):
        tracer.record_llm_call("gpt-4o", 10, 1, duration_ms=ms)
    with tracer.start_span("agent", SpanKind.AGENT):  # usage on the current (agent) span
        tracer.record_llm_call("gpt-4o", 10, 1, duration_ms=250.0)
    store.flush()
    (model,) = store.aggregate("model")
    assert model["runs"] == 4
    assert model["latency_p50_ms"] == pytest.approx(120.0, rel=0.01)
    assert model["latency_max_ms"] == pytest.approx(400.0)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=60))
def test_percentiles_are_nearest_rank_within_one_percent(latencies: list[int]) -> None:
    tracer = Tracer("p", pricing=flat_pricing())
    with tempfile.TemporaryDirectory() as tmp:
        db = SQLiteStore(Path(tmp) / "p.db")
        try:
            for i, ms in enumerate(latencies):
                db.export(llm_trace(tracer, start=BASE + i * NS, ms=float(ms)))
            assert db.flush()
            (model,) = db.aggregate("model")
            summary = db.summary()
        finally:
            db.close()
    for p in (50, 95, 99):
        # DDSketch bins (relative accuracy 1 %), clamped to the exact min and max.
        assert model[f"latency_p{p}_ms"] == pytest.approx(nearest_rank(latencies, p), rel=0.01)
        assert min(latencies) <= model[f"latency_p{p}_ms"] <= max(latencies)
    assert model["latency_avg_ms"] == pytest.approx(sum(latencies) / len(latencies))
    assert model["latency_max_ms"] == max(latencies)
    assert summary["trace_count"] == len(latencies)
    assert summary["latency_max_ms"] >= max(latencies)


def test_summary_error_rate_is_per_trace_not_per_span(populated: SQLiteStore) -> None:
    summary = populated.summary()
    assert summary["trace_count"] == 6 and summary["span_count"] == 11
    assert summary["error_count"] == 2  # one error, one timeout
    assert summary["error_rate"] == pytest.approx(2 / 6)
    assert summary["llm_calls"] == 6 and summary["unpriced_llm_calls"] == 1
    assert summary["users"] == 3 and summary["sessions"] == 0
    assert summary["total_cost_usd"] == pytest.approx(
        sum(r["cost_usd"] for r in populated.list_traces())
    )
    assert summary["first_start_time"] == BASE
    assert summary["last_start_time"] == BASE + 5 * 3600 * NS
    assert summary["latency_p50_ms"] <= summary["latency_p95_ms"] <= summary["latency_p99_ms"]
    empty = populated.summary(since=BASE + 10 * 3600 * NS)
    assert empty["trace_count"] == 0 and empty["error_rate"] == 0.0
    assert empty["latency_p50_ms"] is None


def test_usage_rows_feed_repricing(populated: SQLiteStore) -> None:
    rows = populated.usage_rows()
    assert len(rows) == 6
    assert [r["start_time"] for r in rows] == sorted(r["start_time"] for r in rows)
    first = rows[0]
    assert first["model_name"] == "gpt-4o" and first["input_tokens"] == 1000
    assert first["output_tokens"] == 10 and first["user_id"] == "alice"
    assert first["agent_name"] == "planner"
    assert set(first) >= {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "provider"}
    assert len(populated.usage_rows(since=BASE + 3600 * NS)) == 5


# -- distributed traces -------------------------------------------------------------------


def test_parts_of_one_distributed_trace_merge(tracer: Tracer, store: SQLiteStore) -> None:
    other = Tracer("worker", pricing=flat_pricing())
    front = llm_trace(tracer, start=BASE, ms=500, user="alice", agent="frontdesk")
    remote_root = front.spans[0]
    # The worker service continues the trace under the front's agent span.
    traces = collect(other)
    span = other.begin_span(
        "backend", SpanKind.AGENT, trace_id=front.trace_id, parent_id=remote_root.span_id,
        start_time=BASE + 100 * 1_000_000,
    )  # fmt: skip
    child = other.begin_span("chat", SpanKind.LLM, parent=span, start_time=span.start_time)
    other.record_usage(child, model="gpt-4o", input_tokens=1000, output_tokens=0)
    other.end_span(child, end_time=span.start_time + 10**6)
    other.end_span(span, end_time=BASE + 900 * 1_000_000, status=SpanStatus.ERROR)
    back = retrace(traces[0])
    store.export(back)  # the remote part arrives first
    store.export(front)
    store.flush()
    (row,) = store.list_traces()
    assert row["name"] == front.name and row["remote_parent_id"] is None
    assert row["root_span_id"] == remote_root.span_id
    assert row["span_count"] == 4 and row["llm_calls"] == 2
    assert row["input_tokens"] == 1100 and row["status"] == "error"
    assert row["user_id"] == "alice" and row["start_time"] == BASE
    assert row["duration_ms"] == pytest.approx(900, abs=1)
    assert row["agents"] == ["backend", "frontdesk"]
    stored = store.get_trace(front.trace_id)
    assert stored is not None
    parents = {s["name"]: s["parent_id"] for s in stored["spans"]}
    assert parents["backend"] == remote_root.span_id


# -- retention ----------------------------------------------------------------------------


def test_retention_by_age_deletes_old_traces_and_their_spans(
    tracer: Tracer, store: SQLiteStore
) -> None:
    now = datetime.now(timezone.utc).timestamp()
    for days_ago in (40, 31, 10, 0):
        start = int((now - days_ago * 86400) * NS)
        store.export(llm_trace(tracer, start=start, agent="a"))
    store.flush()
    result = store.retention(max_age_days=30)
    assert result["deleted_traces"] == 2
    assert store.count_traces() == 2
    conn = sqlite3.connect(store.path)
    orphans = conn.execute(
        "SELECT COUNT(*) FROM spans WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
    ).fetchone()[0]
    conn.close()
    assert orphans == 0
    with pytest.raises(ValueError):
        store.retention(max_age_days=-1)


def test_retention_by_size_keeps_the_newest_traces_under_the_limit(
    tracer: Tracer, store: SQLiteStore
) -> None:
    for i in range(400):
        trace = llm_trace(tracer, start=BASE + i * NS, agent="a")
        first = trace.spans[0]
        padded = respan(first, attributes={**first.attributes, "payload": "x" * 2000})
        store.export(retrace(trace, spans=[padded, *trace.spans[1:]]))
    store.flush()
    before = store.retention()["size_bytes"]
    assert before > 800_000
    result = store.retention(max_bytes=300_000)
    assert result["size_bytes"] <= 300_000
    assert 0 < store.count_traces() < 400
    kept = [r["start_time"] for r in store.list_traces(limit=1000)]
    assert min(kept) > BASE  # the oldest went first
    assert max(kept) == BASE + 399 * NS  # the newest stayed
    assert os.path.getsize(store.path) < before  # space given back (incremental vacuum)


def test_writer_applies_configured_retention(tracer: Tracer, tmp_path: Path) -> None:
    db = SQLiteStore(tmp_path / "r.db", max_age_days=1, flush_interval_s=0.05)
    try:
        db.export(llm_trace(tracer, start=BASE))  # from 2023: past retention
        db.flush()
        assert db.count_traces() == 0
    finally:
        db.close()


# -- schema, paths, modes ------------------------------------------------------------------


def test_schema_version_is_recorded_and_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    assert _store_schema.read_version(conn) == _store_schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {
        r[0]: r[1]
        for r in conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'")
        if not r[0].startswith("sqlite_autoindex")
    }
    assert {"traces_by_start", "traces_by_status"} <= set(indexes)
    # Storing a span maintains no index but the table's own key (and the rare long-input
    # calls' partial index): no index on a random text key grows with the spans.
    assert [name for name, table in indexes.items() if table == "spans"] == ["spans_long_input"]
    # A later migration adds to the schema; running the set again changes nothing.
    current = _store_schema.SCHEMA_VERSION
    later = _store_schema.Migration(
        current + 1, "test column", "ALTER TABLE traces ADD COLUMN note TEXT;"
    )
    migrations = (*_store_schema.MIGRATIONS, later)
    assert _store_schema.apply_migrations(conn, migrations) == current + 1
    assert _store_schema.apply_migrations(conn, migrations) == current + 1
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, current + 2))
    assert "note" in {r[1] for r in conn.execute("PRAGMA table_info(traces)")}
    # A failing migration leaves the database as it was.
    bad = _store_schema.Migration(current + 2, "broken", "ALTER TABLE nowhere ADD COLUMN x;")
    with pytest.raises(sqlite3.OperationalError):
        _store_schema.apply_migrations(conn, (*migrations, bad))
    assert _store_schema.read_version(conn) == current + 1
    with pytest.raises(ValueError):
        _store_schema.apply_migrations(conn, (later,))
    conn.close()
    # This code does not understand that version: it refuses instead of misreading.
    with pytest.raises(ConfigurationError, match="newer"):
        SQLiteStore(path)
    with pytest.raises(ConfigurationError, match="newer"):
        SQLiteStore.open_readonly(path)


def test_readonly_store_queries_but_never_writes(tracer: Tracer, tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    with SQLiteStore(path) as writer:
        writer.export(llm_trace(tracer))
    reader = SQLiteStore.open_readonly(path)
    try:
        assert reader.readonly and reader.count_traces() == 1
        assert reader.summary()["trace_count"] == 1
        with pytest.raises(ConfigurationError, match="read-only"):
            reader.export(llm_trace(tracer))
        with pytest.raises(ConfigurationError, match="read-only"):
            reader.retention(max_age_days=0)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._query(lambda c: c.execute("DELETE FROM traces"))
        assert reader.flush()
    finally:
        reader.close()


def test_bad_paths_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(ConfigurationError, match="file path"):
        SQLiteStore(":memory:")
    with pytest.raises(ConfigurationError, match="no span store"):
        SQLiteStore.open_readonly(tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigurationError, match="cannot open"):
        SQLiteStore(garbage)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ConfigurationError, match="not an agentos-obs"):
        SQLiteStore.open_readonly(other)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="directory"):
        SQLiteStore(blocker / "sub" / "x.db")
    for bad in (dict(batch_size=0), dict(max_queue=0), dict(flush_interval_s=0),
                dict(busy_timeout_s=-1), dict(max_bytes=-5)):  # fmt: skip
        with pytest.raises(ConfigurationError):
            SQLiteStore(tmp_path / "ok.db", **bad)  # type: ignore[arg-type]


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTOS_OBS_DB", str(tmp_path / "custom.db"))
    assert default_db_path() == tmp_path / "custom.db"
    monkeypatch.delenv("AGENTOS_OBS_DB")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "agentos-obs" / "traces.db"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_db_path() == tmp_path / ".local" / "share" / "agentos-obs" / "traces.db"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_db_path() == (
        tmp_path / "Library" / "Application Support" / "agentos-obs" / "traces.db"
    )
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_db_path() == tmp_path / "local" / "agentos-obs" / "traces.db"
    # The default path is where a store with no path argument goes.
    monkeypatch.setenv("AGENTOS_OBS_DB", str(tmp_path / "deep" / "dir" / "d.db"))
    with SQLiteStore() as db:
        assert db.path == tmp_path / "deep" / "dir" / "d.db" and db.path.exists()


def test_stack_configure_store_uses_sqlite_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack_module = pytest.importorskip("agentos_obs.stack")
    monkeypatch.setenv("AGENTOS_OBS_DB", str(tmp_path / "stack.db"))
    stack_module.reset_stack()
    try:
        stack = stack_module.configure(store=True)
        assert isinstance(stack.store, SQLiteStore)
        assert stack.store.path == tmp_path / "stack.db"
        with stack.tracer.start_span("via-stack", SpanKind.CHAIN):
            pass
        stack.tracer.force_flush()
        assert [r["name"] for r in stack.store.list_traces()] == ["via-stack"]
    finally:
        stack_module.reset_stack()


def test_module_exports() -> None:
    assert store_module.__all__ == ["SQLiteStore", "default_db_path"]
