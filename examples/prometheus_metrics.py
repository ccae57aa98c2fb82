"""Prometheus metrics of an agent: tokens, cost, latency with trace-id exemplars.

Run: python examples/prometheus_metrics.py [--port 9464] [--serve]

Serves ``/metrics`` on 127.0.0.1, runs some traced LLM calls, then reads its own endpoint
the way Prometheus does (OpenMetrics, which carries exemplars) and prints the interesting
lines and the PromQL to put on a Grafana dashboard. With ``--serve`` it keeps serving (and
keeps producing calls) until Ctrl-C, for a real Prometheus to scrape, with this config:

    scrape_configs:
      - job_name: agentos
        scrape_interval: 15s
        static_configs:
          - targets: ["127.0.0.1:9464"]

Start Prometheus with ``--enable-feature=exemplar-storage`` to keep the exemplars.
Fully offline.
"""

from __future__ import annotations

import argparse
import random
import time
import urllib.request

import agentos_obs as obs
from agentos_obs import SpanKind

MODELS = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic")]
QUERIES = {
    "tokens per second by model": "sum by (model, type) (rate(llm_tokens_total[5m]))",
    "spend per hour (USD)": "sum by (model) (increase(llm_cost_usd_total[1h]))",
    "p95 LLM latency": (
        "histogram_quantile(0.95, sum by (le, model) (rate(llm_latency_seconds_bucket[5m])))"
    ),
    "LLM error ratio": (
        'sum(rate(llm_calls_total{status!="ok"}[5m])) / sum(rate(llm_calls_total[5m]))'
    ),
}


def traced_calls(tracer: obs.Tracer, rng: random.Random, count: int) -> None:
    for _ in range(count):
        with tracer.start_span("assistant", SpanKind.AGENT, {"agent.name": "assistant"}):
            model, provider = rng.choice(
                [("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic")]
            )
            latency_ms = rng.lognormvariate(6.5, 0.6)  # ~700 ms, long tail
            tracer.record_llm_call(
                model, rng.randint(200, 3000), rng.randint(50, 400),
                duration_ms=latency_ms, provider=provider,
            )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args()

    stack = obs.create_observability_stack("metrics-demo")
    _server, port = stack.metrics.start_http_server(port=args.port, addr="127.0.0.1")
    rng = random.Random(3)
    traced_calls(stack.tracer, rng, 200)

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    print(f"Serving http://127.0.0.1:{port}/metrics\n")
    print("Token totals:")
    for line in text.splitlines():
        if line.startswith("llm_tokens_total") and (
            'type="input"' in line or 'type="output"' in line
        ):
            print(f"  {line}")
    print("\nLatency buckets with a trace-id exemplar (Grafana links them to the trace):")
    shown = [line for line in text.splitlines() if line.startswith("llm_latency_seconds_bucket")]
    for line in [line for line in shown if "trace_id" in line][:3]:
        print(f"  {line}")
    print("\nPromQL for a dashboard:")
    for title, query in QUERIES.items():
        print(f"  {title}:\n    {query}")

    if args.serve:
        print("\nServing; Ctrl-C to stop.")
        try:
            while True:
                traced_calls(stack.tracer, rng, 5)
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    stack.metrics.stop()


if __name__ == "__main__":
    main()
