"""The benchmark, in one command: ``make bench`` (= ``.venv/bin/python benchmarks/run.py``).

1. Sets up ``.venv-bench``: the project plus the peer tools pinned in
   ``requirements-peers.txt`` (peers are never project dependencies). Re-installed only
   when that file or pyproject.toml changes.
2. Starts a local HTTP sink on 127.0.0.1 (``sink.py``) for tools that export over the
   network (agentos-obs OTLP, Langfuse, MLflow). Nothing leaves the machine.
3. One worker process per configuration (``bench_worker.py``): every workload, baseline
   and configuration interleaved in that process, medians over rounds; then the trace
   trees recorded under concurrency are checked.
4. The tracer alone (workload 6), the dashboard over 1,000,000 spans and the store's write
   throughput (``bench_extras.py``), a cProfile of agentos-obs on workload (3), and memory
   over 100,000 invocations per configuration (``bench_memory.py``).
5. Writes ``benchmarks/RESULTS.md`` (``report.py``); raw JSON in ``benchmarks/out/``.

Options: ``--quick`` (fewer rounds, 20,000 invocations for memory: a smoke run),
``--only a,b`` (configurations), ``--skip-memory``, ``--no-install``, ``--report-only``,
``--profile-only``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_VENV = ROOT / ".venv-bench"
BENCH_PY = BENCH_VENV / "bin" / "python"
OUT = HERE / "out"
REQUIREMENTS = HERE / "requirements-peers.txt"

sys.path.insert(0, str(HERE))

from peers import AGENTOS_CONFIGS, OFFLINE_ENV, PEER_CONFIGS, REFERENCE_CONFIGS  # noqa: E402


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_bench_venv(install: bool) -> None:
    """Create/refresh .venv-bench when the pinned requirements or the project changed."""
    digest = hashlib.sha256(
        REQUIREMENTS.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()
    stamp = BENCH_VENV / ".bench-installed"
    if BENCH_PY.exists() and stamp.exists() and stamp.read_text() == digest:
        return
    if not install:
        if not BENCH_PY.exists():
            sys.exit(".venv-bench is missing: run without --no-install")
        return
    if not BENCH_PY.exists():
        log(f"creating {BENCH_VENV}")
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
    log("installing the project and the pinned peers into .venv-bench (pip)")
    subprocess.run(
        [str(BENCH_PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[all]",
         "-r", str(REQUIREMENTS)],
        check=True,
    )  # fmt: skip
    stamp.write_text(digest)


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    port_file = OUT / "sink.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([str(BENCH_PY), str(HERE / "sink.py"), str(port_file)])
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"
        time.sleep(0.1)
    proc.kill()
    sys.exit("the local sink did not start")


def run_worker(args: list[str], out: Path, timeout_s: float) -> dict[str, Any]:
    """Run one worker in the bench venv; its JSON result, or an error record."""
    env = {**os.environ, **OFFLINE_ENV, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(
            [str(BENCH_PY), *args, "--out", str(out)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        print(line, flush=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " / ".join(tail) or f"exit code {proc.returncode}"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_profiles(sink_url: str) -> dict[str, Any]:
    """cProfile of the calling thread, and a py-spy sampling profile of every thread."""
    return {
        "profile": run_worker(
            [str(HERE / "bench_worker.py"), "profile", "agentos-handler", "--sink", sink_url],
            OUT / "profile.json",
            timeout_s=900,
        ),
        "sampling_profile": run_worker(
            [str(HERE / "bench_profile.py"), "agentos-handler", "--seconds", "15"],
            OUT / "sampling-profile.json",
            timeout_s=600,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rounds")
    parser.add_argument("--only", help="comma-separated configuration keys")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument("--memory-invocations", type=int)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite RESULTS.md from out/results.json"
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="redo the profiles into out/results.json"
    )
    args = parser.parse_args()
    if args.report_only or args.profile_only:
        from report import write_report

        saved = json.loads((OUT / "results.json").read_text())
        if args.profile_only:
            sink, sink_url = start_sink()
            try:
                saved.update(run_profiles(sink_url))
                saved["profiles_rerun"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            finally:
                sink.terminate()
                sink.wait(timeout=10)
            (OUT / "results.json").write_text(json.dumps(saved, indent=2, default=str))
        log(f"wrote {write_report(saved, HERE / 'RESULTS.md', bench_python=BENCH_PY)}")
        return
    rounds = args.rounds or (5 if args.quick else 21)
    invocations = args.memory_invocations or (20_000 if args.quick else 100_000)
    configs = [*AGENTOS_CONFIGS, *PEER_CONFIGS, *REFERENCE_CONFIGS]
    if args.only:
        wanted = set(args.only.split(","))
        configs = [c for c in configs if c in wanted]

    OUT.mkdir(exist_ok=True)
    ensure_bench_venv(install=not args.no_install)
    sink, sink_url = start_sink()
    started = time.time()
    results: dict[str, Any] = {"timing": {}, "memory": {}, "rounds": rounds}
    try:
        for key in configs:
            log(f"timing {key} ({rounds} interleaved rounds per workload)")
            results["timing"][key] = run_worker(
                [str(HERE / "bench_worker.py"), "timing", key, "--sink", sink_url,
                 "--rounds", str(rounds)],
                OUT / f"timing-{key}.json",
                timeout_s=1800,
            )  # fmt: skip
        log("core tracer (workload 6)")
        results["core"] = run_worker(
            [str(HERE / "bench_worker.py"), "core", "--rounds", str(max(rounds, 9))],
            OUT / "core.json",
            timeout_s=900,
        )
        log("profile of agentos-obs on workload (3)")
        results.update(run_profiles(sink_url))
        log("dashboard over 1,000,000 spans; store write throughput")
        results["extras"] = run_worker(
            [str(HERE / "bench_extras.py"), "--spans", "1000000",
             "--store-spans", "50000" if args.quick else "200000"],
            OUT / "extras.json",
            timeout_s=1800,
        )  # fmt: skip
        if not args.skip_memory:
            log(f"memory: {invocations:,} invocations per configuration, two at a time")

            def memory(key: str) -> tuple[str, dict[str, Any]]:
                return key, run_worker(
                    [str(HERE / "bench_memory.py"), key, "--sink", sink_url,
                     "--invocations", str(invocations)],
                    OUT / f"memory-{key}.json",
                    timeout_s=3600,
                )  # fmt: skip

            with ThreadPoolExecutor(max_workers=2) as pool:
                for key, result in pool.map(memory, ["baseline", *configs]):
                    results["memory"][key] = result
                    log(f"memory {key}: {result.get('growth_bytes_per_invocation', result)}")
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    results["elapsed_s"] = time.time() - started
    results["command"] = "make bench" + (
        f" ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""
    )
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    from report import write_report

    path = write_report(results, HERE / "RESULTS.md", bench_python=BENCH_PY)
    log(f"wrote {path.relative_to(ROOT)} in {results['elapsed_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
