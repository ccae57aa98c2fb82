"""The store's read side on real SQLite files: stored traces read back as the very records the
tracer sealed, keyset iteration, spans and breakdowns a page at a time, its own errors, and
time bounds outside what an int64 of nanoseconds holds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentos_obs.store import (
    InvalidQuery,
    SQLiteStore,
    StoreError,
    StoreNotFound,
    StoreReader,
    parse_when,
)
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, Tracer, TraceRecord
from store_fixtures import fill_store, one_call_trace

T0 = 1_700_000_000 * 10**9  # a fixed epoch-ns start, so ties and order are exact


def _mixed_traces(tracer: Tracer) -> None:
    """The two cases of issue 10 and a bit of everything the record holds."""
    root = tracer.begin_span(
        "FunctionAgent.run",
        SpanKind.AGENT,
        attributes={"agent.name": "planner", "session.id": "s-1", "tags": ["a", "b"], "n": 3},
    )
    tool = tracer.begin_span("search", SpanKind.TOOL, parent=root, attributes={"user.id": "ann"})
    good = tracer.begin_span("chat", SpanKind.LLM, parent=tool)
    tracer.record_usage(
        good, model="gpt-4o", input_tokens=1200, output_tokens=80, cache_read_tokens=200
    )
    good.add_event("first chunk", {"i": 1})
    tracer.end_span(good)
    failed = tracer.begin_span(
        "chat", SpanKind.LLM, parent=root, attributes={"llm.request_model": "gpt-4o"}
    )
    tracer.end_span(failed, error=TimeoutError("provider timed out"))
    unknown = tracer.begin_span("chat", SpanKind.LLM, parent=root)
    tracer.record_usage(unknown, model="my-finetune-xyz", input_tokens=10, output_tokens=5)
    tracer.end_span(unknown)
    tracer.end_span(tool)
    tracer.end_span(root)
    one_call_trace(tracer, "plain", user="bob")


def test_a_stored_trace_reads_back_as_the_record_the_tracer_sealed(tmp_path: Path) -> None:
    db = tmp_path / "mixed.db"
    sealed = fill_store(db, _mixed_traces)
    with StoreReader(db) as reader:
        for live in sealed:
            back = reader.trace_record(live.trace_id[:12])  # a unique prefix is enough
            assert isinstance(back, TraceRecord)
            assert all(isinstance(s, SpanRecord) for s in back.spans)
            assert back.to_dict() == live.to_dict()
            assert back.rollup.to_dict() == live.rollup.to_dict()
            for by in ("by_model", "by_agent"):
                assert {k: v.to_dict() for k, v in getattr(back, by)().items()} == {
                    k: v.to_dict() for k, v in getattr(live, by)().items()
                }
        agent_trace = reader.trace_record(sealed[0].trace_id)
        assert reader.trace_record("ffffffffffffffff") is None
    assert agent_trace is not None
    calls = [s for s in agent_trace.spans if s.llm_call]
    assert len(calls) == 3  # the failed call is a call
    assert {s.cost_status for s in calls} == {
        CostStatus.PRICED,
        CostStatus.NO_USAGE,
        CostStatus.UNPRICED,
    }
    assert {s.agent for s in calls} == {"planner"}  # agent.name, not the span's name
    good = next(s for s in calls if s.cost_status is CostStatus.PRICED)
    assert good.user_id == "ann" and good.session_id == "s-1"  # inherited, as sealed
    assert good.cache_read_tokens == 200 and good.events[0].name == "first chunk"
    root = agent_trace.root_span
    assert root is not None and root.attributes["tags"] == ("a", "b")  # tuples again
    with pytest.raises(AttributeError):
        root.name = "changed"  # type: ignore[misc]  # read back immutable, like the seal's


def test_cost_status_column_is_used_when_the_store_has_it(tmp_path: Path) -> None:
    db = tmp_path / "status.db"
    (live,) = fill_store(db, lambda t: one_call_trace(t, "estimated"))
    call = next(s for s in live.spans if s.llm_call)
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(spans)")}
        if "cost_status" not in columns:  # the migration of the write side adds it
            conn.execute("ALTER TABLE spans ADD COLUMN cost_status TEXT")
        conn.execute(
            "UPDATE spans SET cost_status = 'estimated' WHERE span_id = ?", (call.span_id,)
        )
    with StoreReader(db) as reader:
        back = reader.trace_record(live.trace_id)
        assert back is not None
        (read_call,) = [s for s in back.spans if s.llm_call]
        assert read_call.cost_status is CostStatus.ESTIMATED
        assert back.rollup.estimated_llm_calls == 1
        (row,) = reader.breakdown("model")
        assert row["estimated_llm_calls"] == 1


def test_iteration_is_keyset_paged_and_never_repeats_or_skips(tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    fill_store(db, lambda t: [one_call_trace(t, f"t{i}") for i in range(60)])
    with sqlite3.connect(db) as conn:  # three traces per start second: ties on start time
        ids = [r[0] for r in conn.execute("SELECT trace_id FROM traces ORDER BY name")]
        for i, trace_id in enumerate(ids):
            conn.execute(
                "UPDATE traces SET start_time = ? WHERE trace_id = ?",
                (T0 + (i // 3) * 10**9, trace_id),
            )
    seen: list[tuple[int, str]] = []
    with StoreReader(db) as reader:
        records = reader.iter_trace_records(page_size=7)
        for index, record in enumerate(records):
            seen.append((record.start_time, record.trace_id))
            if index == 10:
                # A trace written mid-iteration, older than the current page: with OFFSET
                # paging every later page would shift by one and repeat a trace.
                (late,) = fill_store(db, lambda t: one_call_trace(t, "late"))
                with sqlite3.connect(db) as conn:
                    conn.execute(
                        "UPDATE traces SET start_time = ? WHERE trace_id = ?",
                        (T0, late.trace_id),
                    )
        assert len(seen) == len(set(seen)) == 60
        assert seen == sorted(seen)
        window = list(
            reader.iter_trace_records(
                since=datetime.fromtimestamp((T0 + 5 * 10**9) / 1e9, tz=timezone.utc),
                until=datetime.fromtimestamp((T0 + 10 * 10**9) / 1e9, tz=timezone.utc),
                page_size=4,
            )
        )
        assert len(window) == 15
        assert all(T0 + 5 * 10**9 <= r.start_time < T0 + 10 * 10**9 for r in window)


def test_spans_of_a_large_trace_come_a_page_at_a_time(tmp_path: Path) -> None:
    db = tmp_path / "large.db"

    def build(tracer: Tracer) -> None:
        root = tracer.begin_span("big", SpanKind.AGENT, start_time=T0, use_context=False)
        for i in range(2500):
            child = tracer.begin_span(
                f"step {i}", SpanKind.TOOL, parent=root, start_time=T0 + (i // 2) * 1000
            )
            tracer.end_span(child, end_time=T0 + (i // 2) * 1000 + 500)
        tracer.end_span(root, end_time=T0 + 10**9)

    (live,) = fill_store(db, build)
    with StoreReader(db) as reader:
        ids: list[str] = []
        after = None
        pages = 0
        while True:
            page = reader.trace(live.trace_id, limit=1000, after=after)
            assert page is not None
            assert page["span_total"] == 2501
            assert len(page["spans"]) <= 1000
            ids.extend(s["span_id"] for s in page["spans"])
            pages += 1
            after = page["next"]
            if after is None:
                break
        assert pages == 3
        assert sorted(ids) == sorted(s.span_id for s in live.spans) and len(set(ids)) == 2501
        whole = reader.trace(live.trace_id)
        assert whole is not None and [s["span_id"] for s in whole["spans"]] == ids
        assert whole["trace"]["span_count"] == 2501
        for bad in ("nonsense", "-1", "1.5", "99999999999999999999", "9223372036854775808"):
            with pytest.raises(InvalidQuery):
                reader.trace(live.trace_id, limit=10, after=bad)
        with pytest.raises(InvalidQuery):
            reader.trace(live.trace_id, limit=10**6)


def test_span_pages_of_a_trace_written_in_parts(tmp_path: Path) -> None:
    """A distributed trace arrives in parts, other traces in between: the pages walk the
    trace's part of the table and still give each of its spans exactly once."""
    db = tmp_path / "parts.db"
    trace_id = "ab" * 16

    def part(tracer: Tracer, name: str, count: int) -> None:
        root = tracer.begin_span(
            name, SpanKind.AGENT, trace_id=trace_id, parent_id="cd" * 8, use_context=False
        )
        for i in range(count):
            tracer.end_span(tracer.begin_span(f"{name} {i}", SpanKind.TOOL, parent=root))
        tracer.end_span(root)

    fill_store(db, lambda t: part(t, "first", 30))
    fill_store(db, lambda t: [one_call_trace(t, f"other {i}") for i in range(20)])
    fill_store(db, lambda t: part(t, "second", 40))
    with StoreReader(db) as reader:
        names: list[str] = []
        after = None
        while True:
            page = reader.trace(trace_id, limit=7, after=after)
            assert page is not None and page["span_total"] == 72
            names += [s["name"] for s in page["spans"]]
            after = page["next"]
            if after is None:
                break
        assert len(names) == len(set(names)) == 72
        assert not any(n.startswith(("other", "chat")) for n in names)
        whole = reader.trace(trace_id)
        assert whole is not None and sorted(s["name"] for s in whole["spans"]) == sorted(names)


def test_breakdowns_page_in_sql_with_totals(tmp_path: Path) -> None:
    db = tmp_path / "users.db"

    def build(tracer: Tracer) -> None:
        for i in range(400):
            one_call_trace(
                tracer,
                "t",
                user=f"user-{i:04d}",
                input_tokens=1000 + i,
                output_tokens=i % 7,
                start_time=T0 + i * 10**6,
            )
        one_call_trace(tracer, "anonymous", start_time=T0)

    fill_store(db, build)
    with StoreReader(db) as reader:
        every = reader.breakdown_page("user")
        assert every.total_rows == 401 and len(every.rows) == 401
        pages = [reader.breakdown_page("user", limit=50, offset=o) for o in range(0, 450, 50)]
        paged = [row for page in pages for row in page.rows]
        assert all(page.total_rows == 401 for page in pages)
        assert all(page.totals == every.totals for page in pages)
        assert paged == every.rows  # same order, same rows, same percentiles
        costs = [row["cost_usd"] for row in paged]
        assert costs == sorted(costs, reverse=True)
        assert every.totals["cost_usd"] == pytest.approx(sum(costs))
        assert every.totals["calls"] == sum(row["calls"] for row in paged) == 401
        assert None in {row["key"] for row in paged}  # the trace without a user
        # the same numbers as the store's own aggregate, key by key
        store = SQLiteStore.open_readonly(db)
        try:
            expected = {r["key"]: r["cost_usd"] for r in store.aggregate("user")}
            assert {r["key"]: r["cost_usd"] for r in paged} == pytest.approx(expected)
        finally:
            store.close()
        with pytest.raises(InvalidQuery):
            reader.breakdown_page("week")


def test_the_reader_has_its_own_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFound, match="no database at"):
        StoreReader(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError) as caught:
        StoreReader(garbage).summary()
    assert not isinstance(caught.value, StoreNotFound)
    assert str(garbage) in str(caught.value) and "\n" not in str(caught.value)
    # the store's layer imports no caller of it: no CLI, no dashboard, no UI
    probe = (
        "import sys, agentos_obs.store; "
        "print(sorted(m for m in sys.modules if m.startswith(('agentos_obs.cli', "
        "'agentos_obs.ui', 'agentos_obs.dashboard'))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("text", ["99999999999d", "99999999999w", "1" + "0" * 400 + "s"])
def test_relative_times_beyond_the_store_range_are_invalid(text: str) -> None:
    with pytest.raises(InvalidQuery, match="earliest time"):
        parse_when(text)


def test_absolute_times_beyond_the_store_range_select_what_the_bound_would(
    tmp_path: Path,
) -> None:
    db = tmp_path / "range.db"
    fill_store(db, lambda t: one_call_trace(t, "now"))
    with StoreReader(db) as reader:
        for since, until, expected in (
            ("0001-01-01", "9999-12-31T23:59:59", 1),
            ("9999-01-01", None, 0),
            (None, "0001-01-01", 0),
            ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", 1),
        ):
            window = {
                "since": None if since is None else parse_when(since),
                "until": None if until is None else parse_when(until),
            }
            assert reader.summary(**window)["trace_count"] == expected, (since, until)
            assert len(reader.traces(**window)[0]) == expected
            assert len(list(reader.iter_trace_records(**window))) == expected
            assert reader.count_traces(**window) == expected
            assert sum(r["calls"] for r in reader.breakdown("model", **window)) == expected
            reader.timeseries(**window)
            reader.stages(**window)
            reader.filter_options(**window)
