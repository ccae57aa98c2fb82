"""The /metrics endpoint scraped by a real Prometheus server (Debian's ``prometheus``).

Each test starts Prometheus on 127.0.0.1 with a 1 s scrape interval and a temporary
storage directory, runs traced work, then asks PromQL what it saw: token totals by model,
``histogram_quantile`` of the LLM latency (compared with the value Prometheus's own
interpolation gives for the latencies we recorded), totals from several worker processes
(prometheus-client's multi-process mode), and the trace-id exemplars of the latency and
cost histograms (OpenMetrics text, and ``/api/v1/query_exemplars``).
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from agentos_obs.metrics import MetricsRegistry, SpanMetricsProcessor, multiprocess_registry
from agentos_obs.tracing import SpanKind, Tracer
from conftest import require_binary

pytestmark = pytest.mark.prometheus

WAIT_S = 90.0  # generous: the machine is slow and noisy; we poll, never time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A Prometheus server scraping ``targets`` every second."""

    def __init__(self, binary: str, workdir: Path, targets: list[int]) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            textwrap.dedent(
                f"""
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: agentos
                    scrape_interval: 1s
                    scrape_timeout: 1s
                    static_configs:
                      - targets: {json.dumps([f"127.0.0.1:{p}" for p in targets])}
                """
            )
        )
        self.log = workdir / "prometheus.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        self.wait_for(lambda: self._get("/-/ready", raw=True) is not None, "ready")

    def _get(self, path: str, *, raw: bool = False) -> Any:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                body = response.read()
        except OSError:
            return None
        return body if raw else json.loads(body)

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if answer is None or answer.get("status") != "success":
            return []
        return list(answer["data"]["result"])

    def exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"query": promql, "start": start, "end": end})
        answer = self._get("/api/v1/query_exemplars?" + query)
        if answer is None or answer.get("status") != "success":
            return []
        return list(answer["data"])

    def wait_for(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT_S
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"prometheus never showed {what}; log:\n{self.log.read_text()}"
                )
            time.sleep(0.25)

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self._log_file.close()


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[list[int]], Prometheus]]:
    binary = require_binary("prometheus")
    started: list[Prometheus] = []

    def start(targets: list[int]) -> Prometheus:
        server = Prometheus(binary, tmp_path, targets)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def histogram_quantile(q: float, values: list[float], bounds: list[float]) -> float:
    """What PromQL's histogram_quantile answers for ``values`` in buckets ``bounds``."""
    counts = [sum(1 for v in values if v <= bound) for bound in bounds]
    total = len(values)
    rank = q * total
    for i, count in enumerate(counts):
        if count >= rank:
            lower = bounds[i - 1] if i > 0 else 0.0
            below = counts[i - 1] if i > 0 else 0
            if count == below:
                return bounds[i]
            return lower + (bounds[i] - lower) * (rank - below) / (count - below)
    return bounds[-1]  # in the +Inf bucket: the highest finite bound


def quantile_query(q: float, model: str) -> str:
    return f'histogram_quantile({q}, sum by (le) (llm_latency_seconds_bucket{{model="{model}"}}))'


def latency_bounds(registry: MetricsRegistry) -> list[float]:
    bounds = set()
    for line in registry.to_prometheus_text().splitlines():
        if line.startswith("llm_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            if le != "+Inf":
                bounds.add(float(le))
    return sorted(bounds)


# -- one process ----------------------------------------------------------------------------

MODELS = {"gpt-4o": ("openai", 120, 30), "claude-sonnet-4": ("anthropic", 800, 60)}


def test_prometheus_scrapes_token_totals_and_latency_quantiles(
    start_prometheus: Callable[[list[int]], Prometheus],
) -> None:
    registry = MetricsRegistry()
    tracer = Tracer("prom-test")
    tracer.add_span_processor(SpanMetricsProcessor(registry, tracer=tracer))
    _server, port = registry.start_http_server(port=0, addr="127.0.0.1")
    rng = random.Random(7)
    recorded: dict[str, dict[str, Any]] = {}
    trace_ids: set[str] = set()
    try:
        for model, (provider, calls, output) in MODELS.items():
            latencies = [rng.uniform(0.05, 4.0) for _ in range(calls)]
            for latency in latencies:
                with tracer.start_span("agent", SpanKind.AGENT) as agent:
                    tracer.record_llm_call(
                        model, 1000, output, cost_usd=0.002, duration_ms=latency * 1000,
                        provider=provider,
                    )  # fmt: skip
                trace_ids.add(agent.trace_id)
            recorded[model] = {
                "input": 1000 * calls,
                "output": output * calls,
                "calls": calls,
                "latencies": latencies,
            }
        prometheus = start_prometheus([port])
        expected_input = {model: float(r["input"]) for model, r in recorded.items()}
        assert prometheus.wait_for(
            lambda: (
                prometheus.by_label('sum by (model) (llm_tokens_total{type="input"})', "model")
                == expected_input
            ),
            "input token totals by model",
        )
        outputs = prometheus.by_label('sum by (model) (llm_tokens_total{type="output"})', "model")
        assert outputs == {model: float(r["output"]) for model, r in recorded.items()}
        calls = prometheus.by_label('sum by (model) (llm_calls_total{status="ok"})', "model")
        assert calls == {model: float(r["calls"]) for model, r in recorded.items()}
        cost = prometheus.by_label("sum by (model) (llm_cost_usd_total)", "model")
        assert cost["gpt-4o"] == pytest.approx(0.002 * 120)

        bounds = latency_bounds(registry)
        for model, r in recorded.items():
            for q in (0.5, 0.95):
                answer = prometheus.by_label(quantile_query(q, model), "")
                assert answer[""] == pytest.approx(histogram_quantile(q, r["latencies"], bounds))
            true_median = sorted(r["latencies"])[len(r["latencies"]) // 2]
            estimate = prometheus.by_label(quantile_query(0.5, model), "")[""]
            # The estimate lies in the bucket of the true median.
            upper = min(b for b in bounds if b >= true_median)
            lower = max([b for b in bounds if b < true_median], default=0.0)
            assert lower <= estimate <= upper

        # Exemplars: the trace behind a latency (or cost) observation, one click away.
        exemplars = prometheus.wait_for(
            lambda: prometheus.exemplars(
                "llm_latency_seconds_bucket", time.time() - 3600, time.time() + 3600
            ),
            "latency exemplars",
        )
        seen = {e["labels"]["trace_id"] for series in exemplars for e in series["exemplars"]}
        assert seen and seen <= trace_ids
        cost_exemplars = prometheus.exemplars(
            "llm_call_cost_usd_bucket", time.time() - 3600, time.time() + 3600
        )
        cost_ids = {e["labels"]["trace_id"] for s in cost_exemplars for e in s["exemplars"]}
        assert cost_ids and cost_ids <= trace_ids
    finally:
        registry.stop()


def test_the_openmetrics_exposition_carries_trace_id_exemplars() -> None:
    registry = MetricsRegistry()
    tracer = Tracer("exemplars")
    tracer.add_span_processor(SpanMetricsProcessor(registry, tracer=tracer))
    with tracer.start_span("agent", SpanKind.AGENT) as agent:
        tracer.record_llm_call("gpt-4o", 10, 5, cost_usd=0.25, duration_ms=420, provider="openai")
    _server, port = registry.start_http_server(port=0)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            text = response.read().decode()
    finally:
        registry.stop()
    marker = f'# {{trace_id="{agent.trace_id}"}}'
    latency = [line for line in text.splitlines() if line.startswith("llm_latency_seconds_bucket")]
    cost = [line for line in text.splitlines() if line.startswith("llm_call_cost_usd_bucket")]
    assert any(marker in line and line.split(marker)[1].split()[0] == "0.42" for line in latency)
    assert any(marker in line and line.split(marker)[1].split()[0] == "0.25" for line in cost)
    assert text.rstrip().endswith("# EOF")


# -- several processes ------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    from agentos_obs.metrics import MetricsRegistry
    from agentos_obs.metrics import SpanMetricsProcessor
    from agentos_obs.tracing import SpanKind
    from agentos_obs.tracing import Tracer
    worker, calls = int(sys.argv[1]), int(sys.argv[2])
    registry = MetricsRegistry()
    tracer = Tracer(f"worker-{worker}")
    tracer.add_span_processor(SpanMetricsProcessor(registry, tracer=tracer))
    model = "gpt-4o" if worker % 2 == 0 else "claude-sonnet-4"
    for i in range(calls):
        with tracer.start_span("request", SpanKind.AGENT):
            tracer.record_llm_call(
                model, 100 + worker, 10, cost_usd=0.001, duration_ms=100 + i,
                provider="openai" if worker % 2 == 0 else "anthropic",
            )
    registry.run_collect_hooks()  # batched updates reach the multi-process files
    print("done", flush=True)
    """
)


def test_several_worker_processes_export_correct_totals(
    start_prometheus: Callable[[list[int]], Prometheus], tmp_path: Path
) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    workers = {0: 40, 1: 25, 2: 60, 3: 15}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(w), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w, n in workers.items()
    ]
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert out.strip() == "done"
    assert len(list(directory.glob("*.db"))) >= len(workers)  # one set of files per worker

    # The serving side (a gunicorn master hook, a sidecar) aggregates every worker's files.
    registry = multiprocess_registry(str(directory))
    port = free_port()
    server, _thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus = start_prometheus([port])
        expected_input = {
            "gpt-4o": float(40 * 100 + 60 * 102),
            "claude-sonnet-4": float(25 * 101 + 15 * 103),
        }
        assert prometheus.wait_for(
            lambda: (
                prometheus.by_label('sum by (model) (llm_tokens_total{type="input"})', "model")
                == expected_input
            ),
            "multi-process input token totals",
        )
        calls = prometheus.by_label("sum by (model) (llm_calls_total)", "model")
        assert calls == {"gpt-4o": 100.0, "claude-sonnet-4": 40.0}
        count = prometheus.by_label("sum(llm_latency_seconds_count)", "")
        assert count[""] == float(sum(workers.values()))
        total_latency = prometheus.by_label("sum(llm_latency_seconds_sum)", "")[""]
        expected_latency = sum(sum(100 + i for i in range(n)) for n in workers.values()) / 1000
        assert math.isclose(total_latency, expected_latency, rel_tol=1e-9)
    finally:
        server.shutdown()
        server.server_close()
