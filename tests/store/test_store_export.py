"""Export and streaming reads: keyset paging yields every trace once, oldest first, in
pages that cost the same anywhere; the export line is the JSONL exporter's line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer, TraceRecord

NS = 1_000_000_000


class FixedPricing:
    def cost(self, model: str, usage: Any, provider: str | None = None) -> float | None:
        return None if model == "mystery" else usage.input_tokens / 1000 + usage.output_tokens / 3


@pytest.fixture
def stored(tmp_path: Path) -> Any:
    tracer = Tracer("svc", pricing=FixedPricing())  # type: ignore[arg-type]
    records: list[TraceRecord] = []
    tracer.add_exporter(records.append, sync=True)
    store = SQLiteStore(tmp_path / "x.db", batch_size=50)
    store.attach(tracer)
    for i in range(120):
        with tracer.start_trace(f"t{i}", {"user.id": f"u{i % 4}", "n": i, "ratio": 1 / 3}):
            with tracer.start_span("agent", SpanKind.AGENT, {"list": [1, 2, 3]}) as agent:
                agent.add_event("step", {"k": "v"})
                with tracer.start_span("chat", SpanKind.LLM) as llm:
                    model = "mystery" if i % 5 == 0 else "gpt-4o"
                    tracer.record_usage(llm, model=model, input_tokens=7 + i, output_tokens=3)
                with tracer.start_span("tool", SpanKind.TOOL):
                    pass
    assert store.flush()
    yield store, records
    store.close()


def normalised(trace: dict[str, Any]) -> dict[str, Any]:
    out = dict(trace)
    out["spans"] = sorted(trace["spans"], key=lambda s: s["span_id"])
    return out


def test_export_lines_are_the_jsonl_exporters_lines(stored: Any) -> None:
    store, records = stored
    lines = list(store.export_lines(page=7))
    assert len(lines) == len(records)
    by_id = {r.trace_id: r for r in records}
    for line in lines:
        got = json.loads(line)
        want = json.loads(json.dumps(by_id[got["trace_id"]].to_dict(), default=str))
        assert normalised(got) == normalised(want)
    starts = [json.loads(line)["start_time"] for line in lines]
    assert starts == sorted(starts)  # oldest first


def test_keyset_pages_yield_every_trace_once_in_any_page_size(stored: Any) -> None:
    store, records = stored
    for page in (1, 7, 50, 500):
        got = [t["trace_id"] for t in store.iter_traces(page=page)]
        assert sorted(got) == sorted(r.trace_id for r in records)
        assert len(set(got)) == len(got)
    middle = sorted(r.start_time for r in records)[40]
    window = list(store.iter_traces(since=middle, page=9))
    assert len(window) == 80 and all(t["start_time"] >= middle for t in window)
    full = next(store.iter_traces())
    assert full == store.get_trace(full["trace_id"])


def test_usage_rows_stream_in_pages(stored: Any) -> None:
    store = stored[0]
    streamed = list(store.iter_usage_rows())
    assert len(streamed) == 120
    assert sorted(streamed, key=lambda r: r["start_time"]) == store.usage_rows()
    assert {r["user_id"] for r in streamed} == {"u0", "u1", "u2", "u3"}
    assert sum(r["cost_usd"] is None for r in streamed) == 24
    assert list(store.iter_usage_rows(min_input_tokens=32_000)) == []


def test_a_nan_written_by_schema_1_goes_out_as_text_not_broken_json(stored: Any) -> None:
    import sqlite3

    store = stored[0]
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE traces SET attributes = '{\"x\":NaN}' WHERE name = 't3'")
    conn.commit()
    conn.close()
    line = next(line for line in store.export_lines() if '"t3"' in line)
    assert json.loads(line)["attributes"] == '{"x":NaN}'
