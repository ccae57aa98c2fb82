"""Where agentos-obs spends its time on workload (3): a py-spy sampling profile, all threads.

    python benchmarks/bench_profile.py CONFIG --seconds 15 --out FILE

py-spy (pinned in requirements-peers.txt) samples the workload running under the
configuration for ``--seconds``, every thread, without instrumenting anything (cProfile
would inflate small functions and only sees the calling thread, missing the work the
dashboard and exporters do on their own threads). Only the thread holding the GIL is
sampled (``--gil``): the Python work being done, not threads asleep. Samples are split:

* the app: its thread and LangChain's pool threads running its runnables; all of it, and
  the part whose stack is inside ``agentos_obs``;
* agentos-obs' own background threads (the dashboard's fold-in, exporters);
* per entry point (outermost ``agentos_obs`` function) and per hot line.

Falls back to cProfile of the calling thread when py-spy cannot run here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARKER = "_sampled_window"  # the app thread's stacks in the measured window have this frame


def profile_target_loop(key: str, seconds: float) -> None:
    """The profiled program: workload (3) under ``key`` for ``seconds``."""
    sys.path.insert(0, str(HERE))
    from peers import CONFIGS
    from workloads import workloads

    config = CONFIGS[key](None)
    config.start()
    workload = next(w for w in workloads() if w.key == "agent_pipeline")
    op = workload.build(config.callbacks("langchain"))
    config.enter("langchain")
    for _ in range(100):  # warm-up (imports, caches) outside the window that counts
        op()
    print(_sampled_window(op, seconds))
    config.flush()
    config.exit("langchain")


def _sampled_window(op: Any, seconds: float) -> int:
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        op()
        count += 1
    return count


def _short(frame: str) -> str:
    """``fn (/path/agentos_obs/x.py:12)`` -> ``x.py:12 fn``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").split("/agentos_obs/")[-1]
    return f"{where} {name}"


def analyse(raw: str) -> dict[str, Any]:
    rows: list[tuple[list[str], int]] = []
    marked: Counter[str] = Counter()
    for row in raw.splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        rows.append((frames, int(count_text)))
        if any(MARKER in f for f in frames):
            marked[frames[0]] += int(count_text)
    # The app thread is the one running the measured window (first frame: the thread).
    app_thread = marked.most_common(1)[0][0] if marked else None
    app = app_ours = background_ours = 0
    entries: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for frames, count in rows:
        # The app's work: its main thread, and LangChain's own pool threads running it.
        in_app = frames[0] == app_thread or any("/langchain_core/" in f for f in frames)
        if in_app and any("importlib" in f for f in frames):
            continue  # start-up imports, not the workload
        ours = [f for f in frames if "/agentos_obs/" in f]
        if in_app:
            app += count
            app_ours += count if ours else 0
        elif ours:
            background_ours += count
        if ours:
            entries[("app: " if in_app else "background: ") + _short(ours[0])] += count
        if "/agentos_obs/" in frames[-1]:
            lines[_short(frames[-1])] += count
    return {
        "tool": "py-spy",
        "app_thread_samples": app,
        "app_thread_in_agentos": app_ours,
        "background_in_agentos": background_ours,
        "top_entries": entries.most_common(10),
        "top_lines": lines.most_common(10),
    }


def run(key: str, seconds: float) -> dict[str, Any]:
    bench_python = Path(sys.executable)
    py_spy = shutil.which("py-spy") or str(bench_python.parent / "py-spy")
    target = [
        str(bench_python), str(Path(__file__).resolve()), "--target", key,
        "--seconds", str(seconds), "--out", "-",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.txt"
        command = [
            py_spy, "record", "--format", "raw", "--full-filenames", "--threads", "--gil",
            "--rate", "250", "-o", str(raw_path), "--", *target,
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"tool": "py-spy", "error": f"{type(exc).__name__}: {exc}"}
        if done.returncode != 0 or not raw_path.exists():
            return {"tool": "py-spy", "error": (done.stderr or done.stdout).strip()[-300:]}
        result = analyse(raw_path.read_text())
    result["config"] = key
    result["seconds"] = seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="agentos-handler")
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.target:
        profile_target_loop(args.target, args.seconds)
        return
    result = run(args.config, args.seconds)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
