"""Core tracer cost: an empty span, and an LLM span with pricing and metrics.

Run: .venv/bin/python benchmarks/bench_core.py   (or: make bench)
Baseline: a bare ``with`` block doing nothing, in the same process, interleaved.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import environment, interleaved, table

from agentos_obs import SpanKind, Tracer, create_observability_stack


def main() -> None:
    bare_tracer = Tracer("bench")
    stack = create_observability_stack("bench")
    full = stack.tracer
    # Warm the price cache: a priced call then costs a dict lookup, not a catalogue search.
    with full.start_span("warm", SpanKind.LLM):
        full.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai")

    def bare() -> None:
        with nullcontext():
            pass

    def empty_span() -> None:
        with bare_tracer.start_span("step", SpanKind.CHAIN):
            pass

    def empty_span_full_stack() -> None:
        with full.start_span("step", SpanKind.CHAIN):
            pass

    def llm_span_full_stack() -> None:
        with full.start_span("chat", SpanKind.LLM):
            full.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai", cache_read_tokens=200)

    results = interleaved(
        {
            "bare with-block": bare,
            "empty span (plain Tracer)": empty_span,
            "empty span (full stack: metrics, dashboard, cost)": empty_span_full_stack,
            "LLM span + pricing + metrics (full stack)": llm_span_full_stack,
        },
        rounds=21,
        inner=2000,
    )
    print(f"# Core span cost ({environment()})\n")
    print(table(results, baseline="bare with-block"))


if __name__ == "__main__":
    main()
