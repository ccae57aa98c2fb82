"""Store write throughput, and what each exporter costs the caller per span.

Run: .venv/bin/python benchmarks/bench_store.py [--quick]

1. SQLite store throughput: ready-made traces are handed to a fresh store as fast as the
   caller can, and the clock stops when ``flush()`` returns (everything committed).
   Spans per second, median over rounds; drops are reported (there must be none).
2. Caller-side cost per span: the same traced operation (a root agent span with an LLM
   span carrying usage, a tool span and a retrieval span: 4 spans) on tracers that differ
   only in their exporter, timed in the same process, interleaved, medians. The cost
   includes the exporter's background thread competing for the 2 cores during the block,
   which is what an app sees; each block's queue is drained (untimed) before the next case
   runs, so no case pays for another's backlog. The OTLP exporter sends to
   ``benchmarks/sink.py`` in another process.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, environment

import agentos_obs._internal.guard as _guard
from agentos_obs.exporters.console import ConsoleExporter
from agentos_obs.exporters.jsonl import JSONLExporter
from agentos_obs.exporters.otlp import OTLPExporter
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Trace, Tracer

SPANS_PER_OP = 4


class FlatPricing:
    """Pricing out of the picture: a constant, so only the exporters differ."""

    def cost(self, model: str, usage: Any, provider: str | None = None) -> float:
        return 0.001


def traced_operation(tracer: Tracer) -> Callable[[], None]:
    def op() -> None:
        with tracer.start_span("research-agent", SpanKind.AGENT, {"user.id": "u1"}):
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(
                    llm, model="gpt-4o-mini", provider="openai", input_tokens=1200,
                    output_tokens=300,
                )  # fmt: skip
            with tracer.start_span("search", SpanKind.TOOL, {"tool.name": "search"}):
                pass
            with tracer.start_span("lookup", SpanKind.RETRIEVAL):
                pass

    return op


def interleaved_settled(
    cases: dict[str, tuple[Callable[[], None], Callable[[], None]]],
    *,
    rounds: int,
    inner: int,
    warmup: int,
) -> dict[str, Result]:
    """Like ``_harness.interleaved``, but each case's ``settle()`` (its exporter's flush) runs
    untimed after each of its blocks: the background work a block queued is not billed to
    the next case, while work its thread does during the block is (the app feels that)."""
    for op, settle in cases.values():
        for _ in range(warmup):
            op()
        settle()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            op, settle = cases[name]
            gc.collect()
            start = time.perf_counter_ns()
            for _ in range(inner):
                op()
            samples[name].append((time.perf_counter_ns() - start) / inner / 1000)
            settle()
    out = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4)
        out[name] = Result(name, statistics.median(values), q[0], q[2], rounds)
    return out


def make_traces(count: int) -> list[Trace]:
    tracer = Tracer("bench", pricing=FlatPricing())  # type: ignore[arg-type]
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    op = traced_operation(tracer)
    for _ in range(count):
        op()
    return traces


def store_throughput(traces: list[Trace], rounds: int) -> dict[str, float]:
    spans = sum(len(t.spans) for t in traces)
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            store = SQLiteStore(Path(tmp) / f"t{r}.db", max_queue=len(traces) + 1)
            start = time.perf_counter()
            for trace in traces:
                store.export(trace)
            assert store.flush(timeout_s=600)
            elapsed = time.perf_counter() - start
            stats = store.stats()
            store.close()
            if stats["dropped_traces"] or stats["written_spans"] != spans:
                raise SystemExit(f"store lost data during the benchmark: {stats}")
            rates.append(spans / elapsed)
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "spans": float(spans),
    }


def start_sink(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = workdir / "sink.port"
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "sink.py"), str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline or sink.poll() is not None:
            raise SystemExit("the OTLP sink did not start")
        time.sleep(0.05)
    return sink, int(port_file.read_text().strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    inner = 100 if args.quick else 250

    traces = make_traces(2000 if args.quick else 5000)
    throughput = store_throughput(traces, rounds=3 if args.quick else 7)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sink, port = start_sink(workdir)
        big = 10_000_000  # no drops: the benchmark measures writing, not shedding
        exporters: dict[str, Any] = {
            "SQLiteStore": SQLiteStore(workdir / "bench.db", max_queue=big),
            "OTLPExporter (to a local sink)": OTLPExporter(
                f"http://127.0.0.1:{port}", max_queue=big, batch_size=256
            ),
            "JSONLExporter": JSONLExporter(workdir / "traces.jsonl", max_queue=big),
            "ConsoleExporter (to a StringIO)": ConsoleExporter(io.StringIO(), color=False),
        }
        cases: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
        bare = Tracer("bench", pricing=FlatPricing())  # type: ignore[arg-type]
        cases["no exporter"] = (traced_operation(bare), lambda: None)
        for name, exporter in exporters.items():
            tracer = Tracer("bench", pricing=FlatPricing())  # type: ignore[arg-type]
            tracer.add_exporter(exporter)
            flush = getattr(exporter, "flush", None)
            settle = (lambda f=flush: f(timeout_s=600)) if flush is not None else (lambda: None)
            cases[name] = (traced_operation(tracer), settle)
        try:
            results = interleaved_settled(cases, rounds=rounds, inner=inner, warmup=50)
        finally:
            for exporter in exporters.values():
                close = getattr(exporter, "close", None)
                if close is not None:
                    close()
            sink.terminate()
            sink.wait(30)
    drops = _guard.dropped_counts()

    print(f"# Store and exporter benchmark ({environment()})\n")
    print(
        f"SQLite store write throughput: **{throughput['median']:,.0f} spans/s** "
        f"(median of rounds; min {throughput['min']:,.0f}, max {throughput['max']:,.0f}; "
        f"{throughput['spans']:,.0f} spans per round, default batch settings, WAL, "
        f"synchronous=NORMAL)\n"
    )
    base = results["no exporter"].median_us / SPANS_PER_OP
    print(f"Caller-side cost per span ({SPANS_PER_OP} spans per operation, medians):\n")
    print("| exporter | µs/span | IQR µs/span | added µs/span |")
    print("|---|---:|---:|---:|")
    for name, result in results.items():
        per_span = result.median_us / SPANS_PER_OP
        added = "" if name == "no exporter" else f"{per_span - base:+.2f}"
        print(
            f"| {name} | {per_span:.2f} | {result.p25_us / SPANS_PER_OP:.2f}–"
            f"{result.p75_us / SPANS_PER_OP:.2f} | {added} |"
        )
    print(f"\nDropped during the run: {drops or 'none'}")


if __name__ == "__main__":
    main()
