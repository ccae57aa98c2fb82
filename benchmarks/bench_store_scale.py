"""The SQLite span store at scale: N spans written live, then what the dashboard, the CLI
and /metrics read from it, timed.

Run: .venv/bin/python benchmarks/bench_store_scale.py --spans 1000000 [--db PATH]
     (make bench-store ARGS="--spans 1000000")

1. Build: N spans in 12-span traces (an agent with chains, 4 LLM calls over 6 models — one
   without a price — retrieval, embedding, tools, memory; 2 % of calls fail), 1,000 users,
   20,000 sessions, start times spread over the last 30 days in order. Each span is handed
   to the store as it ends (``on_end``), then its trace (``export``): what
   ``store.attach(tracer)`` does in an app. Records are built up front per chunk, so the
   build time is the store's, not the generator's.
2. Writer at size: 10,000 more traces (120,000 spans) queued at once into the N-span
   file; spans/s until ``flush()`` returns (everything committed).
3. Reads, on a read-only store as the dashboard opens it: each query 5 times, the median
   (and the first, cold, run): overview (summary), breakdowns by model, agent, user and
   day, time series (30 buckets), stages, the trace list's first page, one trace, the
   change marker, filter menus; over all time and over the last 24 hours (a window whose
   start is not on a bucket: the partial hour is folded from rows). ``/metrics`` rendered
   by the dashboard's collector. Costs: ``aggregate`` by model (``costs``) and the streamed
   calls of ``costs --as-model`` (``iter_usage_rows``).
4. Export: ``iter_traces`` (keyset paging) of up to 1,000,000 spans, each trace to a JSON
   line; spans/s.
5. Bytes per span: the file (after a WAL checkpoint) over N.
6. Caller cost per span: a 4-span operation on a tracer alone and on a tracer with the
   store attached, interleaved, medians (the store's background writer competing for the
   two cores, as in an app).

Prints a Markdown summary and writes the figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import environment

import agentos_obs._internal.guard as _guard
from agentos_obs.pricing import Usage
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus, Tracer, TraceRecord

NS = 1_000_000_000
MS = 1_000_000
DAYS = 30
USERS = 1_000
SESSIONS = 20_000
SPANS_PER_TRACE = 12
# (model, provider, USD per 1M input, per 1M output); the last has no price.
MODELS = [
    ("gpt-4o-mini", "openai", 0.15, 0.60),
    ("gpt-4o", "openai", 2.50, 10.00),
    ("claude-3-5-sonnet", "anthropic", 3.00, 15.00),
    ("claude-3-5-haiku", "anthropic", 0.80, 4.00),
    ("gemini-1.5-flash", "google", 0.075, 0.30),
    ("local-llama", None, None, None),
]
AGENTS = ["support", "research", "billing", "triage"]
# (name, kind, parent index); parents end after their children.
SHAPE = [
    ("agent", SpanKind.AGENT, None),
    ("plan", SpanKind.CHAIN, 0),
    ("chat", SpanKind.LLM, 1),
    ("search-docs", SpanKind.RETRIEVAL, 0),
    ("embed", SpanKind.EMBEDDING, 3),
    ("lookup-order", SpanKind.TOOL, 0),
    ("chat", SpanKind.LLM, 0),
    ("save-memory", SpanKind.MEMORY, 0),
    ("answer", SpanKind.CHAIN, 0),
    ("chat", SpanKind.LLM, 8),
    ("format", SpanKind.TOOL, 8),
    ("chat", SpanKind.LLM, 0),
]
assert len(SHAPE) == SPANS_PER_TRACE


class Workload:
    """Deterministic synthetic traces, in start-time order over the last 30 days."""

    def __init__(self, traces: int, seed: int = 14, end_ns: int | None = None) -> None:
        self.total = traces
        self.rng = random.Random(seed)
        self.end_ns = time.time_ns() if end_ns is None else end_ns
        self.start_ns = self.end_ns - DAYS * 86_400 * NS
        self.step = (self.end_ns - self.start_ns) // max(1, traces)
        self.made = 0

    def _id(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def trace(self, start: int) -> tuple[list[SpanRecord], TraceRecord]:
        rng = self.rng
        trace_id = self._id(128)
        session = rng.randrange(SESSIONS)
        user = f"user-{session % USERS:04d}"
        session_id = f"session-{session:05d}"
        agent = AGENTS[session % len(AGENTS)]
        ids = [self._id(64) for _ in SHAPE]
        # Lay the spans out in time: each child after its previous sibling.
        times: list[list[int]] = [[0, 0] for _ in SHAPE]
        cursor = {0: start}
        for i, (_, kind, parent) in enumerate(SHAPE):
            if parent is None:
                times[i][0] = start
                continue
            begin = cursor.get(parent, times[parent][0]) + rng.randrange(1, 5) * MS
            if kind is SpanKind.LLM:
                length = int(rng.lognormvariate(6.5, 0.6) * MS)  # ~700 ms median
            elif kind in (SpanKind.CHAIN,):
                length = 0  # set from its children below
            else:
                length = rng.randrange(3, 250) * MS
            times[i] = [begin, begin + length]
            cursor[parent] = begin + length
            cursor[i] = begin
        for i in reversed(range(len(SHAPE))):  # parents cover their children
            children = [j for j, s in enumerate(SHAPE) if s[2] == i]
            if children:
                times[i][1] = max(times[i][1], max(times[j][1] for j in children) + MS)
        failed_call = rng.random() < 0.08  # one call in ~50 fails (4 calls a trace)
        records: list[SpanRecord] = []
        status_of_trace = SpanStatus.OK
        llm_seen = 0
        for i, (name, kind, parent) in enumerate(SHAPE):
            attrs: dict[str, Any] = {}
            status = SpanStatus.OK
            usage = None
            cost = None
            cost_status = None
            model = provider = None
            llm_call = False
            if i == 0:
                attrs = {"user.id": user, "session.id": session_id, "agent.name": agent}
            elif kind is SpanKind.TOOL:
                attrs = {"tool.name": name}
            elif kind is SpanKind.RETRIEVAL:
                attrs = {"retrieval.documents": rng.randrange(1, 8)}
            if kind is SpanKind.LLM:
                llm_call = True
                llm_seen += 1
                model, provider, price_in, price_out = MODELS[rng.randrange(len(MODELS))]
                attrs = {"llm.request_model": model, "llm.temperature": 0.2}
                if failed_call and llm_seen == 2:
                    status = SpanStatus.ERROR
                    cost_status = CostStatus.NO_USAGE
                    attrs["error.type"] = "RateLimitError"
                    status_of_trace = SpanStatus.ERROR
                else:
                    inp = rng.randrange(200, 6000)
                    out = rng.randrange(20, 800)
                    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=inp // 4)
                    attrs["llm.finish_reason"] = "stop"
                    if price_in is None:
                        cost_status = CostStatus.UNPRICED
                    else:
                        cost = (inp * price_in + out * (price_out or 0.0)) / 1e6
                        cost_status = CostStatus.PRICED
            begin, end = times[i]
            records.append(
                SpanRecord(
                    span_id=ids[i],
                    trace_id=trace_id,
                    parent_id=None if parent is None else ids[parent],
                    name=name,
                    kind=kind,
                    status=status,
                    start_time=begin,
                    end_time=end,
                    attributes=attrs,
                    llm_call=llm_call,
                    usage=usage,
                    cost_usd=cost,
                    cost_status=cost_status,
                    model=model,
                    provider=provider,
                    user_id=user,
                    session_id=session_id,
                    agent=agent,
                    sanitized=True,
                )
            )
        ended = sorted(records, key=lambda r: r.end_time)
        trace = TraceRecord(
            trace_id=trace_id,
            spans=records,
            name="support-request",
            service_name="bench-app",
            root_span_id=ids[0],
            status=status_of_trace,
            user_id=user,
            session_id=session_id,
            sanitized=True,
        )
        return ended, trace

    def chunks(self, size: int) -> Iterator[list[tuple[list[SpanRecord], TraceRecord]]]:
        while self.made < self.total:
            count = min(size, self.total - self.made)
            chunk = []
            for _ in range(count):
                start = self.start_ns + self.made * self.step + self.rng.randrange(self.step or 1)
                chunk.append(self.trace(start))
                self.made += 1
            yield chunk


def feed(store: SQLiteStore, chunk: list[tuple[list[SpanRecord], TraceRecord]], live: bool) -> None:
    for spans, trace in chunk:
        if live:
            for record in spans:
                store.on_end(record)
        store.export(trace)


def build(path: Path, spans: int, live: bool) -> dict[str, float]:
    """Write ``spans`` spans; returns the time spent waiting for the writer."""
    traces = spans // SPANS_PER_TRACE
    workload = Workload(traces)
    store = SQLiteStore(path, max_queue=2_000_000)
    written_before = 0
    waited = 0.0
    began = time.perf_counter()
    rates: list[float] = []
    try:
        for chunk in workload.chunks(5_000):
            start = time.perf_counter()
            feed(store, chunk, live)
            assert store.flush(timeout_s=3600)
            elapsed = time.perf_counter() - start
            waited += elapsed
            written = store.stats()["written_spans"]
            rates.append((written - written_before) / elapsed)
            written_before = written
            if len(rates) % 20 == 0:
                print(
                    f"  {written:,} spans, {rates[-1]:,.0f} spans/s, "
                    f"{os.path.getsize(path) / 1e6:,.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        stats = store.stats()
        store.close()
    if stats["dropped_spans"] or stats["dropped_traces"]:
        raise SystemExit(f"the store dropped data while building: {stats}")
    return {
        "build_s": time.perf_counter() - began,
        "store_s": waited,
        "last_chunk_spans_per_s": statistics.median(rates[-5:]) if rates else 0.0,
    }


def writer_at_size(path: Path, live: bool) -> dict[str, float]:
    """Spans/s of 10,000 more traces queued at once into the file as it is: by the wall
    clock, and by the CPU time the process spent (the machine is shared: the second says
    what the writer needs, the first what it got)."""
    workload = Workload(10_000, seed=99, end_ns=time.time_ns() + 3600 * NS)
    workload.start_ns = workload.end_ns - 3600 * NS  # the last hour
    workload.step = 3600 * NS // workload.total
    (chunk,) = list(workload.chunks(10_000))
    spans = sum(len(s) for s, _ in chunk)
    store = SQLiteStore(path, max_queue=len(chunk) * (SPANS_PER_TRACE + 2))
    try:
        gc.collect()
        start = time.perf_counter()
        cpu = time.process_time()
        feed(store, chunk, live)
        assert store.flush(timeout_s=3600)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        stats = store.stats()
    finally:
        store.close()
    if stats["written_spans"] != spans:
        raise SystemExit(f"the store lost spans: {stats}")
    return {"wall": spans / elapsed, "cpu": spans / cpu}


def timed(fn: Callable[[], Any], repeat: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"first_ms": times[0], "median_ms": statistics.median(times)}


def reads(path: Path) -> dict[str, dict[str, float]]:
    from agentos_obs.store import StoreReader
    from agentos_obs.ui._metrics import render_store_metrics

    store = SQLiteStore.open_readonly(path)
    day = time.time() - 86_400
    some = store.list_traces(limit=1)[0]["trace_id"]
    out: dict[str, dict[str, float]] = {}
    cases: dict[str, Callable[[], Any]] = {
        "summary (all)": lambda: store.summary(),
        "summary (24h)": lambda: store.summary(since=day),
        "breakdown model (all)": lambda: store.aggregate("model"),
        "breakdown agent (all)": lambda: store.aggregate("agent"),
        "breakdown user (all)": lambda: store.aggregate("user"),
        "breakdown day (all)": lambda: store.aggregate("day"),
        "breakdown model (24h)": lambda: store.aggregate("model", since=day),
        "breakdown user (24h)": lambda: store.aggregate("user", since=day),
        "timeseries 30 (all)": lambda: store.timeseries(30),
        "timeseries 30 (24h)": lambda: store.timeseries(30, since=day),
        "stages (all)": lambda: store.stages(),
        "stages (24h)": lambda: store.stages(since=day),
        "trace list, first page": lambda: store.list_traces(limit=50),
        "trace list, user filter": lambda: store.list_traces(user="user-0042", limit=50),
        "trace list, model filter": lambda: store.list_traces(model="gpt-4o", limit=50),
        "one trace": lambda: store.get_trace(some),
        "change marker": lambda: store.change_marker(),
        "filter menus (all)": lambda: store.filter_options(),
        "costs (by model, all)": lambda: store.aggregate("model"),
    }
    for name, fn in cases.items():
        out[name] = timed(fn)
    reader = StoreReader(path)
    try:
        out["/metrics"] = timed(lambda: render_store_metrics(reader, "text/plain"))
    finally:
        reader.close()

    def as_model() -> None:
        total = 0
        for row in store.iter_usage_rows():
            total += row["input_tokens"]

    out["costs --as-model rows streamed (all)"] = timed(as_model, repeat=1)
    out["costs --as-model long-input calls"] = timed(
        lambda: sum(1 for _ in store.iter_usage_rows(min_input_tokens=32_000)), repeat=3
    )
    store.close()
    return out


def export(path: Path, spans: int) -> dict[str, float]:
    """Keyset export of up to 1,000,000 spans (the oldest traces) to JSON lines."""
    store = SQLiteStore.open_readonly(path)
    try:
        limit = min(spans, 1_000_000)
        count = 0
        size = 0
        start = time.perf_counter()
        for trace in store.iter_traces():
            size += len(json.dumps(trace, default=str))
            count += len(trace["spans"])
            if count >= limit:
                break
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    return {"spans": count, "seconds": elapsed, "spans_per_s": count / elapsed, "mb": size / 1e6}


def caller_cost(path: Path, rounds: int = 15, inner: int = 500) -> dict[str, float]:
    """µs per span of a 4-span operation, tracer alone vs with the store attached."""

    class Flat:
        def cost(self, model: str, usage: Any, provider: str | None = None) -> float:
            return 0.001

    def operation(tracer: Tracer) -> Callable[[], None]:
        def op() -> None:
            with tracer.start_span("agent", SpanKind.AGENT, {"user.id": "u1"}):
                with tracer.start_span("chat", SpanKind.LLM) as llm:
                    tracer.record_usage(llm, model="m", input_tokens=100, output_tokens=10)
                with tracer.start_span("search", SpanKind.TOOL):
                    pass
                with tracer.start_span("lookup", SpanKind.RETRIEVAL):
                    pass

        return op

    bare = Tracer("bench", pricing=Flat())  # type: ignore[arg-type]
    attached = Tracer("bench", pricing=Flat())  # type: ignore[arg-type]
    store = SQLiteStore(path.with_name("caller.db"), max_queue=10_000_000)
    store.attach(attached)
    cases = {
        "tracer": (operation(bare), lambda: None),
        "tracer + store": (operation(attached), lambda: store.flush(600)),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for op, settle in cases.values():
            for _ in range(200):
                op()
            settle()
        for r in range(rounds):
            for name in list(cases) if r % 2 == 0 else list(reversed(cases)):
                op, settle = cases[name]
                gc.collect()
                start = time.perf_counter_ns()
                for _ in range(inner):
                    op()
                samples[name].append((time.perf_counter_ns() - start) / inner / 4 / 1000)
                settle()
    finally:
        store.close()
    bare_us = statistics.median(samples["tracer"])
    with_us = statistics.median(samples["tracer + store"])
    return {"tracer_us": bare_us, "with_store_us": with_us, "added_us": with_us - bare_us}


def probe(path: Path) -> None:
    """Only the writer-at-size step, on an existing file (``--probe``)."""
    writer = writer_at_size(path, True)
    print(f"writer at size: {writer['wall']:,.0f} spans/s, {writer['cpu']:,.0f} per CPU second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="where to build the store (default: temp)")
    parser.add_argument("--mode", choices=("live", "export"), default="live")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--skip-caller", action="store_true")
    parser.add_argument("--probe", action="store_true", help="only time the writer on --db")
    args = parser.parse_args()
    if args.probe:
        probe(args.db)
        return
    live = args.mode == "live"
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP"))
        path = Path(tmp.name) / "scale.db"
    else:
        path = args.db
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    results: dict[str, Any] = {"spans": args.spans, "mode": args.mode, "env": environment()}
    print(f"building {args.spans:,} spans ({args.mode}) in {path}", file=sys.stderr)
    results["build"] = build(path, args.spans, live)
    writer = writer_at_size(path, live)
    results["writer_spans_per_s"] = writer["wall"]
    results["writer_spans_per_cpu_s"] = writer["cpu"]
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = conn.execute("SELECT TOTAL(span_count) FROM traces").fetchone()[0]
    conn.close()
    results["stored_spans"] = int(stored)
    results["file_bytes"] = os.path.getsize(path)
    results["bytes_per_span"] = results["file_bytes"] / stored
    print("reads", file=sys.stderr)
    results["reads"] = reads(path)
    print("export", file=sys.stderr)
    results["export"] = export(path, args.spans)
    if not args.skip_caller:
        results["caller"] = caller_cost(path)
    results["drops"] = _guard.dropped_counts()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    report(results)
    if tmp is not None:
        tmp.cleanup()


def report(results: dict[str, Any]) -> None:
    print(f"# Store at {results['stored_spans']:,} spans ({results['mode']}; {results['env']})\n")
    build = results["build"]
    print(
        f"- build: {build['build_s']:.0f} s; writer at size: "
        f"**{results['writer_spans_per_s']:,.0f} spans/s** "
        f"({results['writer_spans_per_cpu_s']:,.0f} per CPU second); "
        f"file {results['file_bytes'] / 1e6:,.0f} MB = **{results['bytes_per_span']:.0f} B/span**"
    )
    exp = results["export"]
    print(
        f"- export (keyset, JSON lines): {exp['spans']:,} spans in {exp['seconds']:.1f} s "
        f"({exp['spans_per_s']:,.0f} spans/s)"
    )
    if "caller" in results:
        caller = results["caller"]
        print(
            f"- caller cost per span: {caller['tracer_us']:.2f} µs tracer alone, "
            f"{caller['with_store_us']:.2f} µs with the store attached "
            f"(**{caller['added_us']:+.2f} µs**)"
        )
    print("\n| read | median ms | first ms |\n|---|---:|---:|")
    for name, t in results["reads"].items():
        print(f"| {name} | {t['median_ms']:,.1f} | {t['first_ms']:,.1f} |")
    print(f"\nDropped: {results['drops'] or 'none'}")


if __name__ == "__main__":
    main()
