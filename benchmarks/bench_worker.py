"""One benchmark worker process: a configuration against the uninstrumented baseline.

Started by ``run.py`` (one process per configuration, in the benchmark venv):

    python benchmarks/bench_worker.py timing  CONFIG --sink URL --out FILE [--rounds N]
    python benchmarks/bench_worker.py core    --out FILE
    python benchmarks/bench_worker.py profile CONFIG --out FILE

``timing``: every workload the configuration applies to is timed in blocks of ``inner``
operations, baseline and configuration interleaved (order alternating) for ``rounds``
rounds in this one process; each figure is the median over rounds. Global
instrumentation is switched on/off around each of the configuration's blocks. Then the
trace trees the configuration recorded under concurrency are checked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from peers import CONFIGS, OFFLINE_ENV, Config

os.environ.update(OFFLINE_ENV)

Op = Callable[[], object]
Hook = Callable[[], None]


def _noop() -> None:
    return None


def interleaved_blocks(
    cases: dict[str, tuple[Op, Hook, Hook, Hook]], *, rounds: int, inner: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Median µs per operation of each case, timed in interleaved blocks.

    ``cases``: name -> (op, enter, exit, flush); enter/exit run outside the timed region,
    around each block (global instrumentation on/off). Wall-clock time (``median_us``) and
    the process's CPU time (``cpu_median_us``) are both recorded. CPU time counts all the
    process's threads and includes ``flush`` at the end of the block, so work an exporter
    does in the background for the block's operations is charged to them (and not to the
    next block); it is not inflated by other processes on a shared machine.
    """
    names = list(cases)
    for op, enter, exit_, flush in cases.values():
        enter()
        for _ in range(warmup):
            op()
        flush()
        exit_()
    samples: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            op, enter, exit_, flush = cases[name]
            enter()
            gc.collect()
            cpu_start = time.process_time_ns()
            start = time.perf_counter_ns()
            for _ in range(inner):
                op()
            elapsed = time.perf_counter_ns() - start
            flush()
            cpu_elapsed = time.process_time_ns() - cpu_start
            exit_()
            samples[name].append(elapsed / inner / 1000)
            cpu[name].append(cpu_elapsed / inner / 1000)
    out: dict[str, dict[str, float]] = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
        out[name] = {
            "median_us": statistics.median(values),
            "p25_us": q[0],
            "p75_us": q[2],
            "cpu_median_us": statistics.median(cpu[name]),
        }
    return out


def _time_workload(config: Config, workload: Any, rounds: int) -> dict[str, Any]:
    fw = workload.framework
    baseline = workload.build(None)
    instrumented = workload.build(config.callbacks(fw))
    timed = interleaved_blocks(
        {
            "baseline": (baseline, _noop, _noop, _noop),
            config.key: (
                instrumented,
                lambda: config.enter(fw),
                lambda: config.exit(fw),
                config.flush,
            ),
        },
        rounds=rounds,
        inner=workload.inner,
        warmup=max(2, workload.inner // 5),
    )
    config.clear()
    base, cfg = timed["baseline"]["median_us"], timed[config.key]["median_us"]
    cpu_base, cpu_cfg = timed["baseline"]["cpu_median_us"], timed[config.key]["cpu_median_us"]
    return {
        "title": workload.title,
        "baseline": timed["baseline"],
        "config": timed[config.key],
        "overhead_us": cfg - base,
        "ratio": cfg / base,
        "cpu_overhead_us": cpu_cfg - cpu_base,
        "cpu_ratio": cpu_cfg / cpu_base if cpu_base else float("nan"),
        "per_invocation_overhead_us": (cfg - base) / workload.invocations_per_op,
    }


def _time_config(config: Config, rounds: int) -> dict[str, Any]:
    from workloads import workloads

    results: dict[str, Any] = {}
    for workload in workloads():
        if workload.framework not in config.frameworks:
            continue
        try:
            results[workload.key] = _time_workload(config, workload, rounds)
        except Exception as exc:  # one workload failing must not hide the others
            results[workload.key] = {
                "title": workload.title,
                "error": f"{type(exc).__name__}: {exc}",
            }
            print(f"  {config.key:16} {workload.key:20} error: {exc!r}", flush=True)
            continue
        base = results[workload.key]["baseline"]["median_us"]
        cfg = results[workload.key]["config"]["median_us"]
        print(f"  {config.key:16} {workload.key:20} {base:10.1f} -> {cfg:10.1f} µs", flush=True)
    return results


def _check_trees(config: Config, threads: int = 16, per_thread: int = 25) -> dict[str, Any]:
    """Concurrency correctness: 200 concurrent ``ainvoke`` plus ``threads`` threads sharing
    the configuration, then the recorded trees are inspected."""
    from sink import tree_stats
    from workloads import CONCURRENCY, INPUT_TOKENS, build_lcel_chain

    if "langchain" not in config.frameworks:
        return {"verdict": "n/a"}
    chain = build_lcel_chain()
    callbacks = config.callbacks("langchain")
    run_config: Any = {"callbacks": callbacks} if callbacks else None
    question = {"question": "What is the capital of France?"}
    start_collecting = getattr(config, "start_collecting", None)
    if start_collecting is not None:
        start_collecting()
    config.enter("langchain")
    errors: list[BaseException] = []
    try:

        async def many() -> list[Any]:
            return await asyncio.gather(
                *(chain.ainvoke(question, config=run_config) for _ in range(CONCURRENCY))
            )

        asyncio.run(many())

        def worker() -> None:
            try:
                for _ in range(per_thread):
                    chain.invoke(question, config=run_config)
            except BaseException as exc:  # surfaced in the verdict
                errors.append(exc)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        config.exit("langchain")
    config.flush()
    expected = CONCURRENCY + threads * per_thread
    out: dict[str, Any] = {"expected_traces": expected, "errors": [repr(e) for e in errors]}
    usage = config.usage_check(expected, INPUT_TOKENS)
    if usage is not None:
        out["verdict"] = "usage totals " + usage + " (records no trees)"
        return out
    stats: dict[str, Any] | None = None
    sink_stats = getattr(config, "sink_stats", None)
    for _ in range(50):  # exporters that batch in the background: wait for the last batch
        if sink_stats is not None:
            stats = sink_stats()
        else:
            trees = config.trees()
            stats = tree_stats(trees) if trees is not None else None
        if stats is None or stats["traces"] >= expected:
            break
        time.sleep(0.2)
        config.flush()
    if stats is None:
        out["verdict"] = "n/a"
        return out
    out.update(stats)
    sizes = stats["traces_by_size"]
    intact = (
        stats["traces"] == expected
        and stats["spans_with_missing_parent"] == 0
        and stats["duplicated_spans"] == 0
        and stats["traces_by_root_count"] == {"1": expected}
        and len(sizes) == 1
        and not errors
    )
    backend = config.backend_traces()
    if backend is not None:
        out["backend_traces"] = backend
        intact = intact and backend == expected
    out["verdict"] = (
        f"intact: {stats['traces']} traces × {next(iter(sizes))} spans"
        + (f"; {backend} read back from the backend" if backend is not None else "")
        if intact
        else "BROKEN: "
        + json.dumps({k: stats[k] for k in ("traces", "traces_by_size", "traces_by_root_count")})
    )
    return out


def run_timing(key: str, sink: str | None, rounds: int) -> dict[str, Any]:
    config = CONFIGS[key](sink)
    config.start()
    result: dict[str, Any] = {
        "config": key,
        "label": config.label,
        "versions": config.versions(),
    }
    result["workloads"] = _time_config(config, rounds)
    result["trees"] = _check_trees(config)
    return result


def run_core(rounds: int) -> dict[str, Any]:
    """Workload (6): the tracer alone, with an OpenTelemetry SDK span for reference."""
    from contextlib import nullcontext

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentos_obs import SpanKind, Tracer, create_observability_stack

    plain = Tracer("bench")
    full = create_observability_stack("bench").tracer
    with full.start_span("warm", SpanKind.LLM):  # price cache warm, as in a live process
        full.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = provider.get_tracer("bench")

    def bare() -> None:
        with nullcontext():
            pass

    def empty_plain() -> None:
        with plain.start_span("step", SpanKind.CHAIN):
            pass

    def empty_full() -> None:
        with full.start_span("step", SpanKind.CHAIN):
            pass

    def llm_full() -> None:
        with full.start_span("chat", SpanKind.LLM):
            full.record_llm_call("gpt-4o-mini", 1200, 300, provider="openai", cache_read_tokens=200)

    def otel_empty() -> None:
        with otel.start_as_current_span("step"):
            pass
        if len(exporter._finished_spans) > 10_000:  # keep the reference's memory flat
            exporter.clear()

    cases = {
        "bare with-block": bare,
        "agentos empty span (plain Tracer)": empty_plain,
        "agentos empty span (full stack: metrics, dashboard, cost)": empty_full,
        "agentos LLM span + pricing + metrics (full stack)": llm_full,
        "OpenTelemetry SDK empty span (in-memory exporter), reference": otel_empty,
    }
    timed = interleaved_blocks(
        {k: (v, _noop, _noop, _noop) for k, v in cases.items()},
        rounds=rounds,
        inner=2000,
        warmup=500,
    )
    return {"config": "core", "cases": timed}


def run_profile(key: str, sink: str | None, out: Path, invocations: int = 3000) -> dict[str, Any]:
    """cProfile of the configuration on workload (3): where the overhead goes."""
    import cProfile
    import io
    import pstats

    from workloads import workloads

    config = CONFIGS[key](sink)
    config.start()
    workload = next(w for w in workloads() if w.key == "agent_pipeline")
    op = workload.build(config.callbacks("langchain"))
    config.enter("langchain")
    for _ in range(200):
        op()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(invocations):
        op()
    profiler.disable()
    config.exit("langchain")
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
    stats.print_stats(25)
    text = stream.getvalue()
    out.with_suffix(".prof.txt").write_text(text)
    # Self time spent in agentos_obs code, against the total.
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    ours = sum(
        v[2]
        for k, v in stats.stats.items()  # type: ignore[attr-defined]
        if "agentos_obs" in k[0]
    )
    top_ours = sorted(
        (
            (v[2], f"{Path(k[0]).name}:{k[1]}({k[2]})")
            for k, v in stats.stats.items()  # type: ignore[attr-defined]
            if "agentos_obs" in k[0]
        ),
        reverse=True,
    )[:12]
    return {
        "config": key,
        "invocations": invocations,
        "total_s": total,
        "agentos_self_s": ours,
        "top_agentos": [
            {"self_ms_per_invocation": s * 1e3 / invocations, "fn": f} for s, f in top_ours
        ],
        "text_file": str(out.with_suffix(".prof.txt")),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["timing", "core", "profile"])
    parser.add_argument("config", nargs="?")
    parser.add_argument("--sink")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if args.mode == "timing":
        result = run_timing(args.config, args.sink, args.rounds)
    elif args.mode == "core":
        result = run_core(args.rounds)
    else:
        result = run_profile(args.config, args.sink, args.out)
    args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
