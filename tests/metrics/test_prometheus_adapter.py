"""The one adapter on prometheus_client's private attributes (metrics/_prometheus.py).

If one of these tests fails after a prometheus_client upgrade, the private shape the
batched histograms write into has changed: the metrics still work (the adapter falls back
to the public ``observe()``), only slower. Update the adapter, or leave the fallback.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import prometheus_client
import pytest
from prometheus_client import generate_latest

from agentos_obs.metrics import (
    GENAI_TOKEN_BUCKETS,
    MetricsRegistry,
    SeriesBatch,
    multiprocess_registry,
)
from agentos_obs.metrics import _prometheus as adapter

VERSION = getattr(prometheus_client, "__version__", None) or "installed"


def test_the_private_shape_is_what_the_adapter_writes_into() -> None:
    problem = adapter.probe()
    assert problem is None, (
        f"prometheus_client {VERSION} changed the private histogram shape that "
        f"agentos_obs/metrics/_prometheus.py writes into: {problem}. The metrics fall back "
        "to the public observe() (slower on the caller's thread); update the adapter."
    )
    if os.environ.get(adapter.FORCE_PUBLIC_ENV):
        pytest.skip(f"{adapter.FORCE_PUBLIC_ENV} forces the fallback in this run")
    assert adapter.DIRECT and adapter.FALLBACK_REASON is None


def test_every_registry_histogram_child_gets_a_direct_writer() -> None:
    if not adapter.DIRECT:
        pytest.skip(f"fallback selected: {adapter.FALLBACK_REASON}")
    registry = MetricsRegistry()
    batch = SeriesBatch(registry)
    latency = registry.histogram("lat_seconds", buckets=[0.1, 1, 10], labelnames=("model",))
    tokens = registry.histogram("tokens", buckets=GENAI_TOKEN_BUCKETS, labelnames=("type",))
    for child in (latency.labels(model="m"), tokens.labels(type="input")):
        assert adapter.bucket_writer(child.prometheus_metric, child.bucket_bounds) is not None
        assert batch.histogram(child).batched


@pytest.mark.parametrize(
    "child",
    [
        object(),  # nothing there
        SimpleNamespace(_upper_bounds=[1.0, math.inf], _buckets=[1, 2], _sum=None),  # no inc()
        SimpleNamespace(_upper_bounds=(5.0, math.inf), _buckets=[], _sum=None),  # other bounds
        SimpleNamespace(_upper_bounds="1.0", _buckets=[], _sum=None),  # another type
    ],
)
def test_a_changed_shape_selects_the_public_api(child: Any) -> None:
    assert adapter.bucket_writer(child, (1.0,)) is None


def test_a_histogram_without_the_private_shape_is_fed_through_observe() -> None:
    # A stand-in for a prometheus_client release without the private values: the pending
    # histogram hands every observation to the public observe() at once.
    registry = MetricsRegistry()
    observed: list[tuple[float, object]] = []
    child = SimpleNamespace(
        bucket_bounds=(1.0, 2.0),
        prometheus_metric=SimpleNamespace(observe=lambda v, e=None: observed.append((v, e))),
    )
    batch = SeriesBatch(registry)
    pending = batch.histogram(child)  # type: ignore[arg-type]
    assert not pending.batched
    with batch.lock:
        pending.add(0.5, {"trace_id": "ab"})
        pending.add(3.0)
    assert observed == [(0.5, {"trace_id": "ab"}), (3.0, None)]


# -- the fallback gives the same exposition -------------------------------------------------

WORKLOAD = textwrap.dedent(
    """
    import json
    from agentos_obs.metrics import MetricsRegistry, SeriesBatch, SpanMetricsProcessor
    from agentos_obs.metrics import _prometheus as adapter
    from agentos_obs.pricing import Usage
    from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus

    registry = MetricsRegistry()
    processor = SpanMetricsProcessor(registry)
    start = 1_700_000_000_000_000_000
    calls = [  # (model, status, ms, usage, cost, cost status, ttft ms)
        ("gpt-4o", SpanStatus.OK, 250, Usage(1000, 200, 300, 0, 0), 0.5, CostStatus.PRICED, 40),
        ("gpt-4o", SpanStatus.OK, 1500, Usage(64, 8), 0.25, CostStatus.ESTIMATED, None),
        ("gpt-4o", SpanStatus.ERROR, 125, None, None, CostStatus.NO_USAGE, None),
        ("local", SpanStatus.OK, 90_000, Usage(10, 1, 0, 0, 1), None, CostStatus.UNPRICED, 500),
        ("local", SpanStatus.TIMEOUT, 0.5, None, None, CostStatus.NO_USAGE, None),
    ]
    for index, (model, status, ms, usage, cost, cost_status, ttft) in enumerate(calls):
        attributes = {} if ttft is None else {"llm.time_to_first_token_ms": ttft}
        processor.on_end(SpanRecord(
            span_id=f"{index + 1:016x}", trace_id=f"{index + 1:032x}", parent_id=None,
            name="chat", kind=SpanKind.LLM, status=status, start_time=start,
            end_time=start + int(ms * 1_000_000), attributes=attributes, llm_call=True,
            usage=usage, cost_usd=cost, cost_status=cost_status, model=model,
            provider="openai", agent="planner", sanitized=True,
        ))
    for kind, name, ms in ((SpanKind.AGENT, "planner", 2000), (SpanKind.TOOL, "search", 0.25)):
        processor.on_end(SpanRecord(
            span_id="a" * 16, trace_id="b" * 32, parent_id=None, name=name, kind=kind,
            status=SpanStatus.OK, start_time=start, end_time=start + int(ms * 1_000_000),
            agent=name if kind is SpanKind.AGENT else None,
        ))
    # The registry's own API, direct and batched.
    direct = registry.histogram("direct_seconds", "Direct", [0.5, 1], labelnames=("k",))
    direct.observe(0.25, {"trace_id": "cd" * 16}, k="a")
    direct.observe(4, k="a")
    batch = SeriesBatch(registry)
    pending = batch.histogram(direct.labels(k="b"))
    with batch.lock:
        pending.add(0.75, {"trace_id": "ef" * 16})
        pending.add(0.125)
    print(json.dumps({
        "direct": adapter.DIRECT,
        "batched": pending.batched,
        "text": registry.to_prometheus_text(),
        "openmetrics": registry.to_openmetrics_text(),
    }))
    """
)


def run_workload(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", WORKLOAD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


_EXEMPLAR_TIME = re.compile(r"(# \{[^}]*\} \S+) \S+$")


def normalised(text: str) -> list[str]:
    """The exposition without what differs between any two runs: creation times and
    exemplar timestamps."""
    return [_EXEMPLAR_TIME.sub(r"\1", line) for line in text.splitlines() if "_created" not in line]


def test_the_fallback_exposes_exactly_what_the_direct_path_does() -> None:
    env = {k: v for k, v in os.environ.items() if k != adapter.FORCE_PUBLIC_ENV}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    direct = run_workload(env)
    fallback = run_workload({**env, adapter.FORCE_PUBLIC_ENV: "1"})
    assert (direct["direct"], direct["batched"]) == (True, True)
    assert (fallback["direct"], fallback["batched"]) == (False, False)
    for key in ("text", "openmetrics"):
        assert normalised(direct[key]) == normalised(fallback[key])
    om = direct["openmetrics"]
    assert 'llm_latency_seconds_bucket{le="0.32",model="gpt-4o",provider="openai"} 2.0' in om
    assert '# {trace_id="' + "0" * 31 + '1"} 0.25' in om  # the exemplar, in both
    assert 'direct_seconds_bucket{k="b",le="1.0"} 2.0 # {trace_id="' + "ef" * 16 in om
    assert 'llm_calls_without_usage_total{model="local",provider="openai"} 1.0' in om


def test_multiprocess_mode_probes_the_shape_without_writing_to_the_files(
    tmp_path: Path,
) -> None:
    worker = textwrap.dedent(
        """
        from agentos_obs.metrics import MetricsRegistry
        from agentos_obs.metrics import _prometheus as adapter
        registry = MetricsRegistry()
        registry.histogram("job_seconds", "Jobs", buckets=[1]).observe(0.5)
        print(adapter.DIRECT)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.pop(adapter.FORCE_PUBLIC_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", worker], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    text = generate_latest(multiprocess_registry(str(tmp_path))).decode()
    assert "job_seconds_count 1.0" in text
    assert "shape_probe" not in text
