"""Shared benchmark harness: same process, interleaved repeats, medians.

These machines have 2 noisy cores: every case runs in rounds, one after another within a
round, and a case's figure is the median over rounds of its per-operation time. Overhead is
reported as a difference and a ratio against a baseline case measured in the same rounds.
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Result", "environment", "interleaved", "table"]


@dataclass
class Result:
    name: str
    median_us: float
    p25_us: float
    p75_us: float
    rounds: int


def interleaved(
    cases: dict[str, Callable[[], object]],
    *,
    rounds: int = 15,
    inner: int = 200,
    warmup: int = 50,
) -> dict[str, Result]:
    """Time each case ``inner`` times per round, cases interleaved, over ``rounds`` rounds."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        # Rotate the order so no case always runs right after another.
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fn = cases[name]
            gc.collect()
            start = time.perf_counter_ns()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter_ns() - start) / inner / 1000)
    out = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
        out[name] = Result(name, statistics.median(values), q[0], q[2], rounds)
    return out


def table(results: dict[str, Result], baseline: str | None = None) -> str:
    lines = ["| case | median µs/op | IQR µs | overhead µs | ratio |", "|---|---:|---:|---:|---:|"]
    base = results[baseline].median_us if baseline else None
    for r in results.values():
        over = f"{r.median_us - base:.1f}" if base is not None else ""
        ratio = f"{r.median_us / base:.2f}×" if base else ""
        lines.append(
            f"| {r.name} | {r.median_us:.2f} | {r.p25_us:.1f}–{r.p75_us:.1f} | {over} | {ratio} |"
        )
    return "\n".join(lines)


def environment() -> str:
    import os

    return (
        f"Python {sys.version.split()[0]} on {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} cores"
    )
