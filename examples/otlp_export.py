"""Send agent traces to an OpenTelemetry backend (Phoenix, Langfuse, Jaeger, a Collector).

Two services make one distributed trace: a "frontend" agent calls a "worker" agent over
(simulated) HTTP, passing the W3C ``traceparent`` header with ``inject``/``extract``.

Run against a local backend, for example Jaeger (UI on http://localhost:16686):

    docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one:latest
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python examples/otlp_export.py

or Arize Phoenix (UI on http://localhost:6006):

    docker run --rm -p 6006:6006 arizephoenix/phoenix:latest
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:6006 python examples/otlp_export.py

Without an endpoint (no ``--endpoint`` and no ``OTEL_EXPORTER_OTLP_*ENDPOINT``) it runs
offline and prints the spans as they would be sent: names and the GenAI / OpenInference
attributes backends read. Needs the extra: pip install 'agentos-obs[otel]'.
"""

from __future__ import annotations

import argparse
import os
import time

from agentos_obs import SpanKind, Trace, Tracer
from agentos_obs.exporters.otlp import OTLPExporter, to_readable_spans
from agentos_obs.tracing.propagation import extract, inject

SHOWN = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cost",
    "gen_ai.tool.name",
    "openinference.span.kind",
    "llm.token_count.total",
    "user.id",
)


def worker_service(tracer: Tracer, headers: dict[str, str]) -> str:
    """The other service: continues the caller's trace from the request headers."""
    with (
        extract(headers),  # new spans continue the caller's trace
        tracer.start_span("summariser", SpanKind.AGENT),
        tracer.start_span("ChatAnthropic", SpanKind.LLM),
    ):
        time.sleep(0.02)
        tracer.record_llm_call("claude-3-5-haiku", 900, 120, provider="anthropic", duration_ms=20)
    return "summary"


def frontend(tracer: Tracer, worker: Tracer) -> None:
    who = {"user.id": "alice", "session.id": "chat-1"}
    with (
        tracer.start_trace("answer-question", who),
        tracer.start_span("planner", SpanKind.AGENT),
    ):
        with tracer.start_span("ChatOpenAI", SpanKind.LLM):
            time.sleep(0.03)
            tracer.record_llm_call("gpt-4o-mini", 1500, 200, provider="openai", duration_ms=30)
        with tracer.start_span("web_search", SpanKind.TOOL, {"tool.name": "web_search"}):
            time.sleep(0.01)
        with tracer.start_span("call-worker", SpanKind.TOOL, {"tool.name": "summarise"}):
            headers = inject({"content-type": "application/json"})  # adds traceparent
            worker_service(worker, headers)


def print_offline(traces: list[Trace]) -> None:
    print("No OTLP endpoint configured: these spans would be sent.\n")
    for trace in traces:
        spans, _skipped = to_readable_spans(trace)
        for span in spans:
            context = span.context
            assert context is not None
            parent = f"{span.parent.span_id:016x}" if span.parent else "-"
            print(f"{span.name}  trace={context.trace_id:032x}  parent={parent}")
            attributes = span.attributes or {}
            for key in SHOWN:
                if key in attributes:
                    print(f"    {key} = {attributes[key]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="e.g. http://localhost:4318 (default: OTEL_* env)")
    parser.add_argument("--header", action="append", default=[], help="key=value, repeatable")
    args = parser.parse_args()
    configured = args.endpoint or any(
        os.environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )

    frontend_tracer, worker_tracer = Tracer("frontend"), Tracer("worker")
    if not configured:
        finished: list[Trace] = []
        frontend_tracer.add_exporter(finished.append, sync=True)
        worker_tracer.add_exporter(finished.append, sync=True)
        frontend(frontend_tracer, worker_tracer)
        print_offline(finished)
        return

    headers = ",".join(args.header) or None
    exporter = OTLPExporter(args.endpoint, headers=headers)  # one exporter, both services
    frontend_tracer.add_exporter(exporter)
    worker_tracer.add_exporter(exporter)
    frontend(frontend_tracer, worker_tracer)
    exporter.shutdown()  # flushes
    if exporter.dropped:
        print(f"{exporter.dropped} traces could not be sent to {exporter.endpoint}")
    else:
        print(f"sent 2 traces (one distributed trace, 6 spans) to {exporter.endpoint}")


if __name__ == "__main__":
    main()
