"""The embedded SQLite store: record traces, then query them like the CLI and dashboard do.

Run: python examples/sqlite_store.py [--db PATH]
Default database: a temporary file (pass --db, or set AGENTOS_OBS_DB, to keep it; the
``agentos-obs`` CLI and dashboard read the same file). Fully offline.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import agentos_obs as obs
from agentos_obs import SpanKind, Usage
from agentos_obs.store import SQLiteStore

MODELS = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic"), ("gpt-4o", "openai")]


def run_agents(tracer: obs.Tracer, runs: int) -> None:
    rng = random.Random(1)
    for i in range(runs):
        user = rng.choice(["alice", "bob", "carol"])
        who = {"user.id": user, "session.id": f"s{i % 4}"}
        with tracer.start_trace("support-ticket", who), tracer.start_span("triage", SpanKind.AGENT):
            model, provider = rng.choice(MODELS)
            with tracer.start_span("classify", SpanKind.LLM):
                time.sleep(rng.uniform(0.001, 0.01))  # stands in for the model's latency
                tracer.record_llm_call(
                    model, rng.randint(300, 2000), rng.randint(20, 300),
                    duration_ms=rng.uniform(200, 2500), provider=provider,
                )  # fmt: skip
            try:
                with tracer.start_span("crm_lookup", SpanKind.TOOL, {"tool.name": "crm"}):
                    if rng.random() < 0.15:
                        raise TimeoutError("CRM did not answer")
            except TimeoutError:
                pass  # the agent carries on without the CRM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp()) / "traces.db"

    # configure(store=path) does the same for the default stack; here, explicitly:
    tracer, _metrics, _logger, _dashboard = obs.create_observability_stack("support-bot")
    store = SQLiteStore(path)
    tracer.add_exporter(store)
    run_agents(tracer, runs=40)
    store.flush()  # the writer thread writes in batches; flush before reading back

    print(f"Database: {path}\n")
    print("Latest failed traces:")
    for row in store.list_traces(status="error", limit=3):
        print(
            f"  {row['trace_id'][:12]}  {row['name']}  user={row['user_id']}  "
            f"{row['duration_ms']:.0f} ms  ${row['cost_usd']:.4f}  models={row['models']}"
        )

    print("\nOne trace as a tree:")
    newest = store.list_traces(limit=1)[0]
    trace = store.get_trace(newest["trace_id"][:12])  # a unique prefix is enough
    assert trace is not None
    children: dict[str | None, list[dict[str, object]]] = {}
    for span in trace["spans"]:
        children.setdefault(span["parent_id"], []).append(span)

    def show(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            usage = f"  {span['total_tokens']} tokens" if span["counts_usage"] else ""
            print(f"  {'  ' * depth}{span['kind']:<5} {span['name']}{usage}  [{span['status']}]")
            show(str(span["span_id"]), depth + 1)

    show(None, 0)

    print("\nBy model (computed in SQL; latency percentiles are nearest-rank):")
    print(f"  {'model':<18} {'calls':>5} {'tokens':>8} {'cost':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for row in store.aggregate("model"):
        cost = f"${row['cost_usd']:.4f}"
        print(
            f"  {row['key']:<18} {row['llm_calls']:>5} {row['total_tokens']:>8} {cost:>9} "
            f"{row['latency_p50_ms']:>8.0f} {row['latency_p95_ms']:>8.0f}"
        )

    summary = store.summary()
    print(
        f"\nSummary: {summary['trace_count']} traces, error rate {summary['error_rate']:.0%}, "
        f"p95 {summary['latency_p95_ms']:.0f} ms, total ${summary['total_cost_usd']:.4f}"
    )

    # Re-price every stored call as if it had used another model (its own token counts).
    catalog = tracer.pricing
    what_if = 0.0
    for call in store.usage_rows():
        usage = Usage(
            input_tokens=call["input_tokens"],
            output_tokens=call["output_tokens"],
            cache_read_tokens=call["cache_read_tokens"],
            cache_write_tokens=call["cache_write_tokens"],
        )
        what_if += catalog.cost("gpt-4o-mini", usage, provider="openai") or 0.0
    print(f"Had every call used gpt-4o-mini: ${what_if:.4f}")

    deleted = store.retention(max_age_days=30)["deleted_traces"]
    print(f"Retention (30 days): {deleted} old traces deleted")
    store.close()


if __name__ == "__main__":
    main()
