"""Dashboard summary time over 1,000,000 spans, and SQLite store write throughput.

    python benchmarks/bench_extras.py --spans 1000000 --store-spans 200000 --out FILE

Traces are realistic agent runs of 10 spans: an agent root, chains, two priced LLM calls,
a tool and a retrieval, spread over 100 users and 1,000 sessions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# ruff: noqa: SIM117  (nested blocks mirror the span tree)

sys.path.insert(0, str(Path(__file__).parent))

from agentos_obs import SpanKind, Trace, Tracer

SPANS_PER_TRACE = 10


def make_traces(tracer: Tracer, count: int) -> None:
    """Run ``count`` 10-span agent traces through ``tracer`` (its exporters get them)."""
    for i in range(count):
        with tracer.start_span(
            "agent", SpanKind.AGENT, {"user.id": f"user-{i % 100}", "session.id": f"s-{i % 1000}"}
        ):
            with tracer.start_span("plan", SpanKind.CHAIN):
                with tracer.start_span("chat", SpanKind.LLM):
                    tracer.record_llm_call("gpt-4o-mini", 1200, 150, provider="openai")
            with tracer.start_span("retrieve", SpanKind.RETRIEVAL):
                pass
            with tracer.start_span("act", SpanKind.CHAIN):
                with tracer.start_span("get_weather", SpanKind.TOOL):
                    pass
                with tracer.start_span("memory", SpanKind.MEMORY):
                    pass
            with tracer.start_span("answer", SpanKind.CHAIN):
                with tracer.start_span("chat", SpanKind.LLM):
                    tracer.record_llm_call("gpt-4o-mini", 1500, 300, provider="openai")
                with tracer.start_span("parse", SpanKind.CHAIN):
                    pass


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dashboard_summary(spans: int) -> dict[str, Any]:
    from agentos_obs import ObservabilityDashboard

    tracer = Tracer("bench")
    dashboard = ObservabilityDashboard(tracer)
    tracer.add_exporter(dashboard.record_trace)
    traces = spans // SPANS_PER_TRACE
    start = time.perf_counter()
    make_traces(tracer, traces)
    ingest = time.perf_counter() - start
    summary_s = _median_time(dashboard.get_summary, 7)
    breakdown_s = _median_time(dashboard.get_latency_breakdown, 7)
    summary = dashboard.get_summary()
    return {
        "spans": traces * SPANS_PER_TRACE,
        "traces": traces,
        "ingest_s_including_tracing": ingest,
        "get_summary_ms": summary_s * 1e3,
        "get_latency_breakdown_ms": breakdown_s * 1e3,
        "summary_trace_count": summary.get("trace_count", summary.get("total_traces")),
    }


def store_throughput(spans: int) -> dict[str, Any]:
    from agentos_obs.store import SQLiteStore

    collected: list[Trace] = []
    tracer = Tracer("bench")
    tracer.add_exporter(collected.append, sync=True)
    traces = spans // SPANS_PER_TRACE
    make_traces(tracer, traces)
    with tempfile.TemporaryDirectory(prefix="agentos-bench-store-") as tmp:
        store = SQLiteStore(Path(tmp) / "traces.db", max_queue=traces + 1)
        start = time.perf_counter()
        for trace in collected:
            store.export(trace)
        enqueue = time.perf_counter() - start
        store.flush(timeout_s=600)
        total = time.perf_counter() - start
        stats = store.stats()
        db_bytes = (Path(tmp) / "traces.db").stat().st_size
        store.close()
    return {
        "traces": traces,
        "spans": traces * SPANS_PER_TRACE,
        "caller_us_per_trace": enqueue / traces * 1e6,
        "write_s": total,
        "spans_per_s": stats["written_spans"] / total,
        "traces_per_s": stats["written_traces"] / total,
        "written_spans": stats["written_spans"],
        "dropped_traces": stats["dropped_traces"],
        "db_mb": db_bytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--store-spans", type=int, default=200_000)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    for name, fn, arg in (
        ("dashboard", dashboard_summary, args.spans),
        ("store", store_throughput, args.store_spans),
    ):
        try:
            result[name] = fn(arg)
        except Exception as exc:  # reported in the table, not a crash of the whole run
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  {name}: {result[name]}", flush=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
