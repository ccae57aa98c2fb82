"""Traces for the exporter tests: good ones from a real Tracer, hostile ones built by hand
with the public record constructors (``sanitized=True`` skips the seal's repairs, as a
buggy or malicious reader of stored data could)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from agentos_obs.tracing import SpanKind, SpanRecord, SpanStatus, Tracer, TraceRecord

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e47{:02x}"


class ExplodingAttributes(Mapping[str, Any]):
    """Attributes that cannot be read: any sink touching them raises."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("attributes cannot be read")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("attributes cannot be read")

    def __len__(self) -> int:
        return 1


def good_traces(count: int, tracer: Tracer | None = None) -> list[TraceRecord]:
    """``count`` finished traces (an agent span and an LLM call each) from a real tracer."""
    tracer = tracer or Tracer("good-svc")
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    for i in range(count):
        with tracer.start_span(f"good-{i}", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(llm, model="gpt-4o", input_tokens=i + 1, output_tokens=1)
    tracer.remove_exporter(traces.append)
    return traces


def hand_built(index: int, **span: Any) -> TraceRecord:
    """A one-span trace built by hand; ``span`` overrides the record's fields."""
    trace_id = TRACE_ID.format(index)
    fields: dict[str, Any] = {
        "span_id": f"{index + 1:016x}",
        "trace_id": trace_id,
        "parent_id": None,
        "name": f"hand-{index}",
        "kind": SpanKind.CHAIN,
        "status": SpanStatus.OK,
        "start_time": 1_700_000_000_000_000_000,
        "end_time": 1_700_000_000_001_000_000,
        "sanitized": True,
    }
    fields.update(span)
    return TraceRecord(trace_id=trace_id, spans=[SpanRecord(**fields)], name=f"hand-{index}")


def surrogate_name(index: int = 1) -> TraceRecord:
    """A span name with a lone surrogate (a file name read with surrogateescape)."""
    return hand_built(index, name="report-\udcff.txt")


def time_beyond_uint64(index: int = 2) -> TraceRecord:
    return hand_built(index, start_time=2**70, end_time=2**70 + 1)


def unreadable_attributes(index: int = 3) -> TraceRecord:
    return hand_built(index, attributes=ExplodingAttributes())
