"""Writes benchmarks/RESULTS.md from the workers' JSON results (called by run.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from peers import AGENTOS_CONFIGS, CONFIGS, PEER_CONFIGS, skipped_peers
from workloads import LANGCHAIN_WORKLOADS

# Growth per invocation under which memory counts as flat: 100,000 invocations would then
# add under 1.6 MB, within the allocator's own noise on this workload.
FLAT_BYTES_PER_INVOCATION = 16.0
# Objects the garbage collector tracks, kept per invocation: a leaked span is dozens.
FLAT_OBJECTS_PER_INVOCATION = 0.01

METHOD = """\
- **Wall clock and CPU time.** Each block is timed in wall-clock time and in the
  process's CPU time (all threads). The CPU measure also includes a flush of the
  configuration's exporters at the end of its block, so background work done for the
  block (batch export, the dashboard's fold-in) is charged to it, not to the next block.
- **Same process, interleaved, medians.** Each configuration runs in its own worker
  process (so one tool's imports and global patches cannot touch another's figures). In
  that process every workload is timed in blocks of N operations, the uninstrumented
  baseline and the configuration alternating block after block (order reversed every
  round), for R rounds; a figure is the median over rounds of µs per operation. The
  *ratio* is the configuration's median over the baseline's median **from the same
  process**; *overhead* is their difference.
- **Global instrumentation** (agentos-obs `instrument()`, OpenInference, OpenLLMetry, and
  every LlamaIndex configuration, since LlamaIndex has no per-call callbacks) is switched
  on before each of the configuration's blocks and off after it, outside the timed
  region, so the interleaved baseline really runs uninstrumented. OpenLLMetry 0.62.4's
  `uninstrument()` leaves LangChain's `BaseCallbackManager.__init__` wrapped; the
  benchmark removes that wrapper itself (otherwise its baseline would be instrumented).
- **Callback handlers** (agentos-obs handler, Langfuse, MLflow, LangChain's
  `UsageMetadataCallbackHandler`, the no-op reference) are passed per call in
  `config={"callbacks": [...]}`.
- **Backends are local**: OpenTelemetry-based peers export to an in-memory exporter behind
  a `SimpleSpanProcessor` (their cheapest path); Langfuse, MLflow and agentos-obs' OTLP
  exporter send OTLP/HTTP to a sink on 127.0.0.1 started by the benchmark, which decodes
  the spans (used for the tree check). Tools' own telemetry is switched off by
  environment variables (`peers.OFFLINE_ENV`). agentos-obs runs with its full default
  stack: metrics, dashboard and cost analytics on every span.
- **Fake models** are LangChain `BaseChatModel` / LlamaIndex `CustomLLM` subclasses that
  answer instantly and report usage like the OpenAI integrations, so the baseline is the
  framework's own cost and the overhead is as large a share of it as it can ever be.
- **Trace correctness**: 200 concurrent `ainvoke` plus 16 threads × 25 `invoke`
  sharing one handler (or the global instrumentation) of workload (1); the recorded trees
  must be 600 traces, each with one root, no span whose parent is missing, no duplicate.
- **Memory**: workload (1) invoked N times under the configuration, RSS sampled after a
  full collection every N/20 invocations; growth = least-squares slope after the first
  20 %. In-memory exporters and the sink are cleared every 1,000 invocations (a backend
  takes data away); what remains is what the tool keeps. The number of objects the
  garbage collector tracks is sampled too: it is the exact leak signal. Flat = under
  OBJ objects and under FLAT bytes of RSS per invocation. RSS can also grow in a few
  steps (the allocator's high-water mark, e.g. when a background queue peaks) without
  any object being kept: that is reported as such.
"""


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def _fmt_us(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _workload_rows(results: dict[str, Any], workload: str) -> list[str]:
    rows = []
    for key, res in results["timing"].items():
        if "error" in res:
            rows.append(f"| {CONFIGS[key].label} | error: {res['error'][:120]} | | | | | | |")
            continue
        w = res["workloads"].get(workload)
        if w is None:
            continue
        if "error" in w:
            rows.append(f"| {res['label']} | error: {w['error'][:120]} | | | | | | |")
            continue
        base, cfg = w["baseline"]["median_us"], w["config"]["median_us"]
        cpu = (
            f"{_fmt_us(w['cpu_overhead_us'])} | {100 * (w['cpu_ratio'] - 1):.0f} %"
            if "cpu_ratio" in w
            else " | "
        )
        rows.append(
            f"| {res['label']} | {_fmt_us(base)} | {_fmt_us(cfg)} | "
            f"{_fmt_us(w['overhead_us'])} | {w['ratio']:.2f}× | {100 * (w['ratio'] - 1):.0f} % "
            f"| {cpu} |"
        )
    return rows


def _overhead(
    results: dict[str, Any], key: str, workload: str, metric: str = "cpu_ratio"
) -> float | None:
    res = results["timing"].get(key, {})
    w = res.get("workloads", {}).get(workload) if "error" not in res else None
    if w is None or "error" in w or metric not in w:
        return None
    return float(w[metric] - 1)


def _targets(results: dict[str, Any], metric: str) -> list[str]:
    lines = [
        "| workload | agentos-obs handler overhead | global mode | cheapest tracing peer | "
        "cheapest peer of all | ours ÷ cheapest tracing peer | ours ÷ cheapest peer | "
        "target (< 1/3 of cheapest peer) |",
        "|---|---:|---:|---|---|---:|---:|---|",
    ]
    tracing_peers = [p for p in PEER_CONFIGS if CONFIGS[p].records_trees]
    for workload in LANGCHAIN_WORKLOADS:
        ours = _overhead(results, "agentos-handler", workload, metric)
        peers = {p: _overhead(results, p, workload, metric) for p in PEER_CONFIGS}
        known = {p: v for p, v in peers.items() if v is not None}
        if ours is None or not known:
            lines.append(f"| {workload} | n/a | | | | | | not measured |")
            continue
        cheapest = min(known, key=lambda p: known[p])
        tracing = {p: v for p, v in known.items() if p in tracing_peers}
        cheapest_tracing = min(tracing, key=lambda p: tracing[p]) if tracing else cheapest
        vs_all = ours / known[cheapest] if known[cheapest] > 0 else float("inf")
        vs_tracing = ours / tracing[cheapest_tracing] if tracing.get(cheapest_tracing) else 0.0
        verdict = (
            "met"
            if vs_all < 1 / 3
            else f"missed: {vs_all:.2f} of {cheapest}'s overhead (target < 0.33)"
        )
        tracing_over = tracing.get(cheapest_tracing, known[cheapest])
        glob = _overhead(results, "agentos-global", workload, metric)
        glob_text = "" if glob is None else f"+{100 * glob:.0f} %"
        lines.append(
            f"| {workload} | +{100 * ours:.0f} % | {glob_text} "
            f"| {cheapest_tracing} +{100 * tracing_over:.0f} % "
            f"| {cheapest} +{100 * known[cheapest]:.0f} % | {vs_tracing:.2f} | {vs_all:.2f} "
            f"| {verdict} |"
        )
    ours3 = _overhead(results, "agentos-handler", "agent_pipeline", metric)
    glob3 = _overhead(results, "agentos-global", "agent_pipeline", metric)
    if ours3 is not None:
        verdict = "met" if ours3 < 0.05 else f"missed by {100 * ours3 - 5:.1f} points"
        lines.append("")
        lines.append(
            f"Workload (3) overhead, target < 5 % of the baseline: handler **+{100 * ours3:.1f} %**"
            + (f", global mode +{100 * glob3:.1f} %" if glob3 is not None else "")
            + f" — {verdict}."
        )
    return lines


def _trees(results: dict[str, Any]) -> list[str]:
    lines = ["| configuration | verdict | traces | spans |", "|---|---|---:|---:|"]
    for res in results["timing"].values():
        if "error" in res:
            continue
        t = res.get("trees", {})
        lines.append(
            f"| {res['label']} | {t.get('verdict', 'n/a')} | {t.get('traces', '')} | "
            f"{t.get('spans', '')} |"
        )
    return lines


def _memory_verdict(res: dict[str, Any]) -> str:
    objects = res.get("objects_per_invocation")
    rss = res["growth_bytes_per_invocation"]
    if objects is not None and objects >= FLAT_OBJECTS_PER_INVOCATION:
        return f"**no**: {objects:.2f} objects kept per invocation"
    if rss < FLAT_BYTES_PER_INVOCATION:
        return "yes"
    if objects is None:
        return "**no**"
    return (
        f"objects yes; RSS +{res.get('rss_growth_after_warmup_mb', 0):.1f} MB in steps "
        "(allocator high-water mark, see below)"
    )


def _memory(results: dict[str, Any]) -> list[str]:
    lines = [
        "| configuration | invocations | RSS first → last sample | RSS growth / invocation "
        "| objects kept / invocation | flat? |",
        "|---|---:|---|---:|---:|---|",
    ]
    for key, res in results.get("memory", {}).items():
        label = CONFIGS[key].label
        if "error" in res:
            lines.append(f"| {label} | error: {res['error'][:120]} | | | | |")
            continue
        objects = res.get("objects_per_invocation")
        lines.append(
            f"| {label} | {res['invocations']:,} | {res['rss_first_mb']:.1f} → "
            f"{res['rss_last_mb']:.1f} MB | {res['growth_bytes_per_invocation']:.1f} B | "
            f"{'' if objects is None else f'{objects:.4f}'} | {_memory_verdict(res)} |"
        )
    return lines


def _core(results: dict[str, Any]) -> list[str]:
    core = results.get("core", {})
    if "cases" not in core:
        return [f"not measured: {core.get('error', '')}"]
    lines = ["| case | median µs/op | IQR µs |", "|---|---:|---|"]
    for name, r in core["cases"].items():
        lines.append(f"| {name} | {r['median_us']:.2f} | {r['p25_us']:.2f}–{r['p75_us']:.2f} |")
    return lines


def _extras(results: dict[str, Any]) -> list[str]:
    extras = results.get("extras", {})
    lines = []
    d = extras.get("dashboard", {})
    if "get_summary_ms" in d:
        lines.append(
            f"- Dashboard over **{d['spans']:,} spans** ({d['traces']:,} traces): "
            f"`get_summary()` **{d['get_summary_ms']:.2f} ms**, `get_latency_breakdown()` "
            f"{d['get_latency_breakdown_ms']:.2f} ms (median of 7; aggregates are "
            f"maintained at ingest, so summary time does not grow with span count). Ingest "
            f"incl. tracing the spans: {d['ingest_s_including_tracing']:.1f} s."
        )
    else:
        lines.append(f"- Dashboard: not measured ({d.get('error', extras.get('error'))})")
    s = extras.get("store", {})
    if "spans_per_s" in s:
        lines.append(
            f"- SQLite store write throughput: **{s['spans_per_s']:,.0f} spans/s** "
            f"({s['traces_per_s']:,.0f} traces/s of 10 spans; {s['spans']:,} spans written in "
            f"{s['write_s']:.1f} s, {s['dropped_traces']} dropped, {s['db_mb']:.0f} MB file); "
            f"caller cost {s['caller_us_per_trace']:.1f} µs per trace (queue append)."
        )
    else:
        lines.append(f"- Store: not measured ({s.get('error', extras.get('error'))})")
    return lines


def _profile(results: dict[str, Any]) -> list[str]:
    p = results.get("profile", {})
    if "top_agentos" not in p:
        return [f"not measured: {p.get('error', '')}"]
    share = 100 * p["agentos_self_s"] / p["total_s"] if p["total_s"] else 0.0
    lines = [
        f"cProfile of workload (3) with the agentos-obs handler, {p['invocations']:,} "
        f"invocations: self time inside `agentos_obs` is **{share:.0f} %** of the profiled "
        f"time (the rest is LangChain and the workload; cProfile inflates small functions). "
        f"Top agentos-obs functions by self time:",
        "",
        "| function | self ms per invocation |",
        "|---|---:|",
    ]
    lines += [f"| `{t['fn']}` | {t['self_ms_per_invocation']:.3f} |" for t in p["top_agentos"]]
    return lines


def _sampling_profile(results: dict[str, Any]) -> list[str]:
    p = results.get("sampling_profile", {})
    if "app_thread_samples" not in p:
        return [f"Sampling profile not available: {p.get('error', 'not run')}"]
    app = p["app_thread_samples"] or 1
    lines = [
        f"py-spy (`--gil`: the thread holding the GIL, i.e. Python work), {p['seconds']:.0f} s "
        f"of workload (3) with the agentos-obs handler (full stack): "
        f"**{100 * p['app_thread_in_agentos'] / app:.1f} %** of the app's samples (its thread "
        f"and LangChain's pool threads) are inside `agentos_obs` code; agentos-obs' own "
        f"background threads (the dashboard's fold-in, exporters) add "
        f"**{100 * p['background_in_agentos'] / app:.1f} %** on top (they hold the GIL the app "
        "then waits for). The rest of the measured overhead is LangChain's own callback "
        "machinery for a run that has a handler (the no-op handler row). Hottest entry points "
        "and lines:",
        "",
        "| entry point (outermost agentos_obs frame) | samples |",
        "|---|---:|",
        *[f"| `{name}` | {n} |" for name, n in p["top_entries"]],
        "",
        "| line | samples (self) |",
        "|---|---:|",
        *[f"| `{name}` | {n} |" for name, n in p["top_lines"]],
    ]
    return lines


def write_report(results: dict[str, Any], path: Path, *, bench_python: Path) -> Path:
    versions: dict[str, str] = {}
    for res in results["timing"].values():
        versions.update(res.get("versions", {}))
    try:
        freeze = subprocess.run(
            [str(bench_python), "-m", "pip", "list", "--format=freeze"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        pins = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
        for name in ("langchain-core", "llama-index-core", "opentelemetry-sdk"):
            versions.setdefault(name, pins.get(name, "?"))
    except (OSError, subprocess.SubprocessError):
        pass
    lines = [
        "# Benchmarks: agentos-obs against the tools a user would pick instead",
        "",
        f"Generated by **`{results['command']}`** "
        f"(report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, run took "
        f"{results['elapsed_s'] / 60:.0f} min). Raw results: `benchmarks/out/*.json` "
        f"(not committed).",
        "",
        f"Machine: {_machine()}. {results['rounds']} interleaved rounds per workload."
        + (
            f" The profiles were re-run on {results['profiles_rerun']} with "
            "`benchmarks/run.py --profile-only` (same code, same machine)."
            if results.get("profiles_rerun")
            else ""
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
        "",
        "## Targets",
        "",
        "Overhead = (tool ÷ baseline) − 1 in the same process. **By process CPU time** (all "
        "threads of the app's process, background exporters included; robust to other "
        "processes on this shared 2-core machine):",
        "",
        *_targets(results, "cpu_ratio"),
        "",
        "By wall-clock time (what a caller waits; noisier here):",
        "",
        *_targets(results, "ratio"),
        "",
        "*Cheapest tracing peer*: the cheapest peer that records spans. *Cheapest peer of "
        "all* includes LangChain's `UsageMetadataCallbackHandler`, which records no spans "
        "(only token totals). The no-op handler row below shows what LangChain itself "
        "charges for dispatching to any handler.",
        "",
        "## Overhead per workload",
        "",
        "Baseline and tool medians are wall-clock µs per operation, measured in the same "
        "process (see Method); the CPU columns are the same comparison in process CPU time. "
        "Workload (4) is one `asyncio.gather` of 200 `ainvoke`.",
    ]
    titles: dict[str, str] = {}
    for res in results["timing"].values():
        for key, w in res.get("workloads", {}).items():
            titles.setdefault(key, w["title"])
    for key, title in titles.items():
        lines += [
            "",
            f"### {title}",
            "",
            "| configuration | baseline µs | with tool µs | overhead µs | ratio | overhead "
            "| CPU overhead µs | CPU overhead |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *_workload_rows(results, key),
        ]
    lines += [
        "",
        "## Trace correctness under concurrency",
        "",
        *_trees(results),
        "",
        "## Memory",
        "",
        *_memory(results),
        "",
        "## Core tracer alone (workload 6)",
        "",
        *_core(results),
        "",
        "## Dashboard and store",
        "",
        *_extras(results),
        "",
        "## Where agentos-obs spends its time",
        "",
        *_sampling_profile(results),
        "",
        *_profile(results),
        "",
        "## Peers not measured",
        "",
        *[f"- {name}: {why}." for name, why in skipped_peers().items()],
        "",
        "## Method",
        "",
        METHOD.replace("FLAT", f"{FLAT_BYTES_PER_INVOCATION:.0f}").replace(
            "OBJ", f"{FLAT_OBJECTS_PER_INVOCATION}"
        ),
    ]
    path.write_text("\n".join(lines))
    _ = AGENTOS_CONFIGS  # the agentos rows come first in results["timing"] (run.py order)
    return path
