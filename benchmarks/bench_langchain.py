"""Overhead of the LangChain handler: per invoke / stream of a 4-run LCEL chain, and memory.

    .venv/bin/python benchmarks/bench_langchain.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_langchain.py --quick    # smoke run

Method: one process; the chain ``prompt | chat model | parser`` (4 LangChain runs: the
sequence, the prompt, the model, the parser) with an offline model that reports usage.
Every variant (bare, a no-op handler, ours on a plain ``Tracer()``, ours on the full
default stack, global ``instrument()``) is timed in interleaved rounds (bare, A, B, bare,
A, B, ...) so machine noise hits them alike; each round times a batch of calls and the
figure is the median over rounds. Times are the process's CPU time by default (robust
to a loaded machine: time spent descheduled is not counted; ``--clock wall`` otherwise).
Overhead = median(variant) - median(bare), also per run (/ 4) and as a ratio; "over
noop" subtracts a handler that does nothing instead, i.e. it leaves out what LangChain
itself spends dispatching events to any handler.
Memory: RSS (and optionally tracemalloc) before and after many invocations with the
handler, after a warm-up, reported as growth per invocation.
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
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentos_obs.integrations.langchain import (
    AgentOSCallbackHandler,
    instrument,
    uninstrument,
)
from agentos_obs.testing import FakeChatModel
from agentos_obs.tracing import Tracer

RUNS_PER_INVOKE = 4


class NoopHandler(BaseCallbackHandler):
    """Receives every event and does nothing (inline, like ours)."""

    run_inline = True


def build_chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])
    return prompt | FakeChatModel(replies=["the answer is forty two"]) | StrOutputParser()


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def variants(chain: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (invoke once, stream once)."""
    out: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    inputs = {"q": "what is six times seven?"}

    def pair(config: dict[str, Any] | None) -> tuple[Callable[[], Any], Callable[[], Any]]:
        def invoke() -> Any:
            return chain.invoke(inputs, config=config)

        def stream() -> Any:
            for _ in chain.stream(inputs, config=config):
                pass

        return invoke, stream

    out["bare"] = pair(None)
    # LangChain's own cost of dispatching events to any handler: the floor for every tracer.
    out["noop handler"] = pair({"callbacks": [NoopHandler()]})
    plain = AgentOSCallbackHandler(tracer=Tracer(pricing=_catalog()))
    out["handler+Tracer()"] = pair({"callbacks": [plain]})
    try:
        from agentos_obs.stack import create_observability_stack

        stack = create_observability_stack("bench")
        out["handler+stack"] = pair({"callbacks": [AgentOSCallbackHandler(tracer=stack.tracer)]})
    except Exception as exc:  # other engineers' modules may not have landed yet
        print(f"(full stack unavailable: {type(exc).__name__}: {exc})")
    return out


def _catalog() -> Any:
    try:
        from agentos_obs.pricing import default_catalog

        return default_catalog()
    except Exception:

        class FlatPrices:  # stand-in until the price catalog lands
            def cost(self, model: str, usage: Any, provider: str | None = None) -> float:
                return float(usage.input_tokens * 1.5e-7 + usage.output_tokens * 6e-7)

        return FlatPrices()


# CPU time of this process by default: on a shared, noisy machine the time the process
# spends descheduled is not the handler's cost (``--clock wall`` for wall-clock time).
CLOCK: Callable[[], int] = time.process_time_ns


def time_batch(fn: Callable[[], Any], n: int) -> float:
    """Mean µs per call over ``n`` calls."""
    start = CLOCK()
    for _ in range(n):
        fn()
    return (CLOCK() - start) / n / 1000.0


def bench_timing(chain: Any, rounds: int, batch: int) -> None:
    table = variants(chain)
    # Global mode: toggled around its own batches (instrument() patches LangChain).
    names = [*table, "instrument()"]
    global_tracer = Tracer(pricing=_catalog())
    for mode_index, mode in enumerate(("invoke", "stream")):
        samples: dict[str, list[float]] = {name: [] for name in names}

        def timed(name: str, n: int, mode_index: int = mode_index) -> float:
            if name != "instrument()":
                return time_batch(table[name][mode_index], n)
            instrument(tracer=global_tracer)
            try:
                return time_batch(table["bare"][mode_index], n)
            finally:
                uninstrument()

        for name in names:  # warm-up (imports, caches, price lookups)
            timed(name, 50)
        for _ in range(rounds):
            for name in names:
                samples[name].append(timed(name, batch))
        bare = statistics.median(samples["bare"])
        print(f"\n{mode}: {rounds} interleaved rounds x {batch} calls, medians")
        noop = statistics.median(samples["noop handler"])
        print(
            f"  {'variant':<18} {'µs/call':>9} {'over bare':>10} {'µs/run':>7} {'ratio':>6}"
            f" {'over noop':>10} {'µs/run':>7}"
        )
        for name in names:
            med = statistics.median(samples[name])
            over, over_noop = med - bare, med - noop
            print(
                f"  {name:<18} {med:9.1f} {over:10.1f} {over / RUNS_PER_INVOKE:7.1f}"
                f" {med / bare:6.2f} {over_noop:10.1f} {over_noop / RUNS_PER_INVOKE:7.1f}"
            )


def bench_memory(
    chain: Any, invocations: int, use_tracemalloc: bool, label: str, tracer: Tracer
) -> None:
    handler = AgentOSCallbackHandler(tracer=tracer)
    config = {"callbacks": [handler]}
    inputs = {"q": "memory"}
    for _ in range(2000):  # warm-up: caches, interned strings, pools
        chain.invoke(inputs, config=config)
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        before_traced = tracemalloc.get_traced_memory()[0]
    before = rss_bytes()
    start = time.perf_counter()
    for _ in range(invocations):
        chain.invoke(inputs, config=config)
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss_bytes()
    print(f"\nmemory, {label}: {invocations} invocations with the handler ({elapsed:.1f}s)")
    growth = (after - before) / invocations
    print(f"  RSS {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB: {growth:.2f} B/invocation")
    if use_tracemalloc:
        after_traced = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(
            f"  tracemalloc: {(after_traced - before_traced) / 1e3:.1f} kB retained:"
            f" {(after_traced - before_traced) / invocations:.3f} B/invocation"
        )
    print(f"  handler open runs after: {handler.open_run_count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--memory-invocations", type=int, default=100_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations (slow)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument(
        "--no-stack-memory", action="store_true", help="memory with a plain Tracer() only"
    )
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall clock"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time_ns if args.clock == "cpu" else time.perf_counter_ns
    if args.quick:
        args.rounds, args.batch, args.memory_invocations = 3, 30, 2000
    chain = build_chain()
    version = sys.version.split()[0]
    print(f"python {version}, chain: prompt | chat model | parser ({RUNS_PER_INVOKE} runs)")
    print(f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall clock'}")
    bench_timing(chain, args.rounds, args.batch)
    bench_memory(
        chain, args.memory_invocations, args.tracemalloc, "Tracer()", Tracer(pricing=_catalog())
    )
    if not args.no_stack_memory:
        from agentos_obs.stack import create_observability_stack

        stack = create_observability_stack("bench-memory")
        bench_memory(chain, args.memory_invocations, args.tracemalloc, "full stack", stack.tracer)


if __name__ == "__main__":
    main()
