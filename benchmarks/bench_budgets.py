"""What a budget costs on the caller's thread per LLM call, for each ledger backend.

Run: .venv/bin/python benchmarks/bench_budgets.py   (starts its own redis-server if found)

Each case is one priced LLM span (``start_span`` + ``record_llm_call``) on a plain Tracer
with a per-user daily budget in raise mode: ``on_start`` checks the key's total, ``on_end``
adds the call. Baseline: the same span with no budget, interleaved in the same rounds. A
shared ledger's writes happen on its writer thread; they compete with the caller only for
the GIL, which the figures include. ``cache_ttl_s=0`` reads the ledger on every call (the
tight overshoot bound); the default 0.5 s reads a user's total at most twice a second.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import environment, interleaved, table

from agentos_obs.cost import BudgetAlert
from agentos_obs.pricing import PriceCatalog
from agentos_obs.tracing import SpanKind, Tracer

PRICES = {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}
USERS = [f"user{n}" for n in range(50)]
BUDGETS: list[BudgetAlert] = []


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def case(ledger: str | None, **options: float) -> Callable[[], None]:
    tracer = Tracer("bench", pricing=PriceCatalog(overrides=PRICES))
    if ledger is not None:
        budget = BudgetAlert(
            budget_limit=1e9, period="daily", key="user", mode="raise", ledger=ledger,
            name=f"bench-{len(BUDGETS)}", **options,
        )  # fmt: skip
        BUDGETS.append(budget)
        tracer.add_span_processor(budget)
    counter = iter(range(10**12))

    def call() -> None:
        user = USERS[next(counter) % len(USERS)]
        with (
            tracer.start_trace("request", attributes={"user.id": user}),
            tracer.start_span("chat", SpanKind.LLM),
        ):
            tracer.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai")

    return call


def cpu_per_call(
    cases: dict[str, Callable[[], None]], *, rounds: int, inner: int
) -> dict[str, tuple[float, float]]:
    """Median over rounds of (caller thread CPU, whole process CPU: the ledger's writer
    thread included) per call, in µs, cases interleaved."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            thread, process = time.thread_time_ns(), time.process_time_ns()
            for _ in range(inner):
                fn()
            for case_budget in BUDGETS:
                case_budget.flush()  # the writes this round caused are paid in this round
            samples[name].append((
                (time.thread_time_ns() - thread) / inner / 1000,
                (time.process_time_ns() - process) / inner / 1000,
            ))  # fmt: skip
    return {
        name: (statistics.median(t for t, _ in values), statistics.median(p for _, p in values))
        for name, values in samples.items()
    }


def per_call_us(fn: Callable[[Any], None], arg: Any, n: int = 5000) -> float:
    return statistics.median(timeit.repeat(lambda: fn(arg), number=n, repeat=7)) / n * 1e6


def hooks_timeit(ledgers: list[str]) -> list[tuple[str, float, float, float]]:
    """timeit of the two hooks alone, per ledger and cache_ttl_s: (name, ttl, start, end)."""
    tracer = Tracer("bench", pricing=PriceCatalog(overrides=PRICES))
    with (
        tracer.start_trace("r", attributes={"user.id": "u"}),
        tracer.start_span("chat", SpanKind.LLM) as span,
    ):
        tracer.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai")
    record = span.record
    assert record is not None
    rows = []
    for ledger in ledgers:
        for ttl in (0.5, 0.0):
            budget = BudgetAlert(
                budget_limit=1e9, period="daily", key="user", mode="raise", ledger=ledger,
                cache_ttl_s=ttl, name=f"hooks-{len(rows)}",
            )  # fmt: skip
            budget.on_end(record)
            budget.flush()
            start = per_call_us(budget.on_start, span)
            end = per_call_us(budget.on_end, record)
            budget.flush()
            budget.close()
            rows.append((ledger.split(":")[0], ttl, start, end))
    return rows


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="bench-budgets-")
    redis = start_redis(tmp)
    sqlite = f"sqlite:///{tmp}/ledger.db"
    cases = {
        "no budget": case(None),
        "memory": case("memory"),
        "sqlite, cache_ttl_s=0.5 (default)": case(sqlite),
        "sqlite, cache_ttl_s=0 (read every call)": case(sqlite, cache_ttl_s=0.0),
    }
    if redis is not None:
        cases["redis, cache_ttl_s=0.5 (default)"] = case(redis[1])
        cases["redis, cache_ttl_s=0 (read every call)"] = case(redis[1], cache_ttl_s=0.0)
    try:
        hooks = hooks_timeit(["memory", sqlite] + ([redis[1]] if redis else []))
        results = interleaved(cases, rounds=15, inner=400, warmup=200)
        cpu = cpu_per_call(cases, rounds=15, inner=400)
    finally:
        for budget in BUDGETS:
            budget.close()
        if redis is not None:
            redis[0].kill()
    print(f"# Budget cost per LLM call on the caller's thread ({environment()})\n")
    print("timeit of the budget's hooks (median of 7 × 5000; the key's total cached or not):\n")
    print("| ledger | cache_ttl_s | on_start µs | on_end µs | per call µs |")
    print("|---|---:|---:|---:|---:|")
    for name, ttl, start, end in hooks:
        print(f"| {name} | {ttl} | {start:.1f} | {end:.1f} | {start + end:.1f} |")
    print("\nA whole LLM span (trace + span + pricing), interleaved with no budget.\n")
    print("Wall time per call (includes waiting for the GIL held by the ledger's writer):\n")
    print(table(results, baseline="no budget"))
    print("\nCPU per call: the calling thread's, and the whole process's (writer thread too):\n")
    print("| case | thread µs | overhead µs | process µs | overhead µs |")
    print("|---|---:|---:|---:|---:|")
    base_thread, base_process = cpu["no budget"]
    for name, (thread, process) in cpu.items():
        print(
            f"| {name} | {thread:.1f} | {thread - base_thread:.1f} | {process:.1f} | "
            f"{process - base_process:.1f} |"
        )
    if redis is None:
        print("\n(redis-server not found: Redis cases skipped)")


if __name__ == "__main__":
    main()
