"""Overhead of the LlamaIndex handlers per query and per LlamaIndex span, and memory.

    .venv/bin/python benchmarks/bench_llama_index.py             # full run (a few minutes)
    .venv/bin/python benchmarks/bench_llama_index.py --quick     # smoke run
    .venv/bin/python benchmarks/bench_llama_index.py --queries 100000   # long memory run

Method: one process; a VectorStoreIndex query engine over MockEmbedding with an offline LLM
that reports OpenAI-shaped usage in ``raw`` (``agentos_obs.testing.FakeOpenAI``), plain and
streaming. Each variant — bare (no handler on the dispatcher), our handlers on a plain
``Tracer()``, our handlers on the full default stack (metrics, dashboard, cost) — is timed
in interleaved rounds (bare, A, B, bare, A, B, …; the order rotates each round) so machine
noise hits them alike. Attaching and detaching the handlers happens between batches,
outside the timing. The figure is the median over rounds of µs per query; overhead =
median(variant) − median(bare), and per span = overhead ÷ LlamaIndex spans per query (counted from a
recorded trace). Memory: tracemalloc and RSS before and after many queries with the
handlers attached (after a warm-up), plus the handler's own state sizes at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import environment

from agentos_obs.integrations.llama_index import instrument, uninstrument
from agentos_obs.testing import FakeOpenAI, failure_counts
from agentos_obs.tracing import Tracer

QUESTION = "What is the capital of France?"
DOCS = [
    "The capital of France is Paris. It sits on the Seine.",
    "Mount Everest is the highest mountain above sea level.",
    "Python was created by Guido van Rossum and released in 1991.",
]


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tracers() -> dict[str, Tracer | None]:
    out: dict[str, Tracer | None] = {"bare": None, "handlers+Tracer()": Tracer("bench")}
    try:
        from agentos_obs.stack import create_observability_stack

        out["handlers+full stack"] = create_observability_stack("bench").tracer
    except Exception as exc:  # other engineers' modules may not have landed yet
        print(f"(full stack unavailable: {type(exc).__name__}: {exc})")
    return out


def make_index() -> Any:
    """A vector index over three documents with offline embeddings."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    return VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCS],
        embed_model=MockEmbedding(embed_dim=8, model_name="text-embedding-3-small"),
    )


def workloads() -> dict[str, Callable[[], Any]]:
    index = make_index()
    plain = index.as_query_engine(llm=FakeOpenAI())
    streaming = index.as_query_engine(llm=FakeOpenAI(), streaming=True)

    def query() -> Any:
        return plain.query(QUESTION)

    def stream_query() -> Any:
        return "".join(streaming.query(QUESTION).response_gen)

    return {"query": query, "streaming query": stream_query}


def attach(tracer: Tracer | None) -> None:
    if tracer is None:
        uninstrument()
    else:
        instrument(tracer=tracer)


def spans_per_query(fn: Callable[[], Any]) -> int:
    tracer = Tracer("count")
    traces: list[Any] = []
    tracer.add_exporter(traces.append, sync=True)
    instrument(tracer=tracer)
    try:
        fn()
    finally:
        uninstrument()
    (trace,) = traces
    return len(trace.spans)


def timed(
    fn: Callable[[], Any], variants: dict[str, Tracer | None], rounds: int, inner: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm-up: price cache, lazy imports, kind caches
        attach(variants[name])
        for _ in range(20):
            fn()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            attach(variants[name])
            gc.collect()
            start = time.perf_counter_ns()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / inner / 1000)
    uninstrument()
    return samples


def replay_cost(fn: Callable[[], Any], rounds: int) -> str:
    """Our handlers alone: the exact span/event calls of one real query, recorded, then
    replayed straight into our handlers (no LlamaIndex work around them), so machine noise
    on the rest of the query does not blur the handler's own cost."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span_handlers import NullSpanHandler

    calls: list[tuple[str, dict[str, Any]]] = []

    class SpanRecorder(NullSpanHandler):
        def span_enter(self, **kwargs: Any) -> None:  # type: ignore[override]
            calls.append(("enter", kwargs))

        def span_exit(self, **kwargs: Any) -> None:  # type: ignore[override]
            calls.append(("exit", kwargs))

        def span_drop(self, **kwargs: Any) -> None:  # type: ignore[override]
            calls.append(("drop", kwargs))

    class EventRecorder(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            calls.append(("event", {"event": event}))

    root = get_dispatcher()
    span_rec, event_rec = SpanRecorder(), EventRecorder()
    root.add_span_handler(span_rec)
    root.add_event_handler(event_rec)
    try:
        fn()
    finally:
        root.span_handlers.remove(span_rec)
        root.event_handlers.remove(event_rec)
    spans = sum(1 for op, _ in calls if op == "enter")
    events = sum(1 for op, _ in calls if op == "event")

    handler = instrument(tracer=Tracer("replay"))
    uninstrument()  # not on the dispatcher: called directly below
    ops: dict[str, Callable[..., Any]] = {
        "enter": handler.span_enter,
        "exit": handler.span_exit,
        "drop": handler.span_drop,
        "event": handler.event_handler.handle,
    }
    bridge = handler.bridge

    def replay() -> None:
        for op, kwargs in calls:
            ops[op](**kwargs)
        # The same response objects come back each replay: forget them so usage is recorded
        # (and priced) every time, as for a real new call.
        bridge._counted.clear()

    for _ in range(200):
        replay()
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter_ns()
        for _ in range(500):
            replay()
        samples.append((time.perf_counter_ns() - start) / 500 / 1000)
    med = statistics.median(samples)
    return (
        f"replayed query ({spans} spans, {events} events): {med:.1f} µs per query in our "
        f"handlers, {med / spans:.1f} µs per LlamaIndex span (tracer and pricing included)"
    )


def overhead_table(samples: dict[str, list[float]], spans: int) -> str:
    base = statistics.median(samples["bare"])
    lines = [
        "| variant | median µs/query | IQR µs | overhead µs/query | overhead µs/span | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in samples.items():
        med = statistics.median(values)
        q = statistics.quantiles(values, n=4) if len(values) >= 2 else [med, med, med]
        over = med - base
        per_span = f"{over / spans:.1f}" if name != "bare" else ""
        lines.append(
            f"| {name} | {med:.0f} | {q[0]:.0f}–{q[2]:.0f} | "
            f"{over:.0f} | {per_span} | {med / base:.2f}× |"
        )
    return "\n".join(lines)


def memory(fn: Callable[[], Any], queries: int) -> str:
    tracer = Tracer("memory")  # no exporter keeps traces: what grows is ours
    handler = instrument(tracer=tracer)
    try:
        for _ in range(200):
            fn()
        gc.collect()
        # tracemalloc slows every allocation ~10x: long runs measure RSS only.
        traced = queries <= 20_000
        if traced:
            tracemalloc.start()
            snap0 = tracemalloc.take_snapshot()
        rss0 = rss_bytes()
        start = time.perf_counter()
        for _ in range(queries):
            fn()
        elapsed = time.perf_counter() - start
        gc.collect()
        rss1 = rss_bytes()
        growth = 0
        if traced:
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            growth = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
        bridge = handler.bridge
        state = (
            f"open spans {bridge.open_span_count}, parked streams {bridge.parked_stream_count}, "
            f"dedupe window {bridge.dedupe_window_size}, "
            f"active traces {tracer.active_trace_count}"
        )
    finally:
        uninstrument()
    heap = (
        f"tracemalloc growth {growth / 1024:.1f} KiB ({growth / queries:.2f} B/query), "
        if traced
        else ""
    )
    return (
        f"{queries:,} queries in {elapsed:.0f} s: {heap}RSS growth "
        f"{(rss1 - rss0) / 2**20:.1f} MiB; handler state at the end: {state}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, 2,000 queries")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--inner", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None, help="queries for the memory run")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)
    inner = args.inner or (20 if args.quick else 100)
    queries = args.queries if args.queries is not None else (2_000 if args.quick else 20_000)

    print(f"# LlamaIndex handler overhead ({environment()})\n")
    variants = tracers()
    for name, fn in workloads().items():
        spans = spans_per_query(fn)
        samples = timed(fn, variants, rounds, inner)
        print(f"## {name}: {spans} LlamaIndex spans per query, {rounds} rounds × {inner}\n")
        print(overhead_table(samples, spans))
        print()
        print(replay_cost(fn, rounds))
        print()
    if queries > 0:  # --queries 0 skips the memory run
        print("## Memory\n")
        print(memory(workloads()["query"], queries))
    failures = failure_counts()
    if failures:
        print(f"\nhandler failures counted: {failures}")


if __name__ == "__main__":
    main()
