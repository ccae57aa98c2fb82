"""Real SQLite stores filled through a real Tracer, for the read side's tests (reader, CLI,
dashboard): what the tracer sealed is returned, to compare with what is read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer, TracerConfig, TraceRecord


def fill_store(
    db: Path, build: Callable[[Tracer], object], *, service_name: str = "fixture"
) -> list[TraceRecord]:
    """Run ``build(tracer)`` with the store at ``db`` as an exporter; every trace written."""
    store = SQLiteStore(db, flush_interval_s=0.01, max_queue=1_000_000, batch_size=512)
    records: list[TraceRecord] = []
    tracer = Tracer(config=TracerConfig(service_name=service_name))
    tracer.add_exporter(store)
    tracer.add_exporter(records.append, sync=True)
    build(tracer)
    assert store.flush(120), "the store did not write everything in time"
    stats = store.stats()
    store.close()
    assert stats["dropped_traces"] == 0, stats
    return records


def one_call_trace(
    tracer: Tracer,
    name: str,
    *,
    model: str = "gpt-4o-mini",
    user: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 20,
    start_time: int | None = None,
    attributes: dict[str, object] | None = None,
) -> None:
    """A root agent span with one LLM call under it."""
    root_attributes: dict[str, object] = dict(attributes or {})
    if user is not None:
        root_attributes["user.id"] = user
    root = tracer.begin_span(
        name, SpanKind.AGENT, attributes=root_attributes, start_time=start_time, use_context=False
    )
    llm = tracer.begin_span(
        "chat", SpanKind.LLM, parent=root, start_time=start_time, use_context=False
    )
    tracer.record_usage(llm, model=model, input_tokens=input_tokens, output_tokens=output_tokens)
    end = None if start_time is None else start_time + 5_000_000
    tracer.end_span(llm, end_time=end)
    tracer.end_span(root, end_time=None if end is None else end + 1_000_000, status=SpanStatus.OK)
