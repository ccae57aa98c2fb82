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
from collections.abc import Callable
from pathlib import Path

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


def thread_cpu(
    cases: dict[str, Callable[[], None]], *, rounds: int, inner: int
) -> dict[str, float]:
    """Median over rounds of the caller thread's CPU time per call, cases interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.thread_time_ns()
            for _ in range(inner):
                fn()
            samples[name].append((time.thread_time_ns() - start) / inner / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


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
        results = interleaved(cases, rounds=15, inner=400, warmup=200)
        cpu = thread_cpu(cases, rounds=15, inner=400)
    finally:
        for budget in BUDGETS:
            budget.close()
        if redis is not None:
            redis[0].kill()
    print(f"# Budget cost per LLM call on the caller's thread ({environment()})\n")
    print("Wall time per call (includes waiting for the GIL held by the ledger's writer):\n")
    print(table(results, baseline="no budget"))
    print(
        "\nCPU time of the calling thread per call (time.thread_time; steadier on a busy host):\n"
    )
    print("| case | median µs/call | overhead µs |\n|---|---:|---:|")
    for name, value in cpu.items():
        print(f"| {name} | {value:.1f} | {value - cpu['no budget']:.1f} |")
    if redis is None:
        print("\n(redis-server not found: Redis cases skipped)")


if __name__ == "__main__":
    main()
