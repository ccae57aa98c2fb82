"""Memory after N invocations of workload (1) under one configuration: growth per invocation.

    python benchmarks/bench_memory.py CONFIG --invocations 100000 --sink URL --out FILE

The process's resident set size (RSS, from /proc/self/statm) and the number of objects
the garbage collector tracks are sampled after a full collection every N/20 invocations.
Growth per invocation is the least-squares slope over the samples after the first 20 %
(warm-up: caches, interned strings, allocator arenas). Objects retained per invocation is
the exact leak signal (a leaked span is dozens of objects); RSS also moves in steps when
the allocator takes a new arena at a high-water mark, which is not a leak.

Peers whose exporter keeps spans in memory (the OpenTelemetry in-memory exporter) or whose
sink keeps statistics are cleared every 1,000 invocations, as a real backend would take
the data away: what remains is what the tool itself keeps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from peers import CONFIGS, OFFLINE_ENV

os.environ.update(OFFLINE_ENV)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def measure(key: str, sink: str | None, invocations: int) -> dict[str, Any]:
    from workloads import build_lcel_chain

    config = CONFIGS[key](sink)
    config.start()
    chain = build_lcel_chain()
    callbacks = config.callbacks("langchain")
    run_config: Any = {"callbacks": callbacks} if callbacks else None
    question = {"question": "What is the capital of France?"}
    clear_every = 1000 if key not in ("lc-usage",) else 10_000
    sample_every = max(1, invocations // 20)
    config.enter("langchain")
    samples: list[tuple[int, int]] = []
    objects: list[tuple[int, int]] = []
    start = time.perf_counter()
    try:
        for i in range(1, invocations + 1):
            chain.invoke(question, config=run_config)
            if i % clear_every == 0 and key != "baseline":
                config.flush()
                config.clear()
            if i % sample_every == 0:
                gc.collect()
                samples.append((i, rss_bytes()))
                objects.append((i, len(gc.get_objects())))
    finally:
        config.exit("langchain")
    elapsed = time.perf_counter() - start
    steady = samples[len(samples) // 5 :]
    growth = slope([float(i) for i, _ in steady], [float(r) for _, r in steady])
    steady_objects = objects[len(objects) // 5 :]
    object_growth = slope(
        [float(i) for i, _ in steady_objects], [float(n) for _, n in steady_objects]
    )
    return {
        "config": key,
        "invocations": invocations,
        "seconds": elapsed,
        "rss_first_mb": samples[0][1] / 2**20,
        "rss_last_mb": samples[-1][1] / 2**20,
        "growth_bytes_per_invocation": growth,
        "rss_growth_after_warmup_mb": (steady[-1][1] - steady[0][1]) / 2**20,
        "objects_per_invocation": object_growth,
        "samples": samples,
        "object_samples": objects,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--invocations", type=int, default=100_000)
    parser.add_argument("--sink")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    result = measure(args.config, args.sink, args.invocations)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
