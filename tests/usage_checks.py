"""What the usage tests with real clients compare: a tracer on the real price catalogue whose
sealed records and live spans are kept, and the two checks of the issue — reported usage
priced exactly as the catalogue prices the server's usage, estimated usage within the
estimator's stated tolerance of it."""

from __future__ import annotations

from typing import Any

import pytest

from agentos_obs.pricing import (
    Estimate,
    Tolerance,
    Usage,
    usage_from_anthropic,
    usage_from_openai,
)
from agentos_obs.tracing import CostStatus, SpanRecord, Tracer, TracerConfig, TraceRecord
from agentos_obs.tracing._spans import Span
from replay_server import Served


class Recorder:
    """A tracer (default price catalogue) whose traces and live spans are kept."""

    def __init__(self, **config: Any) -> None:
        self.tracer = Tracer(config=TracerConfig(**config))
        self.traces: list[TraceRecord] = []
        self.live: list[Span] = []
        self.tracer.add_exporter(self.traces.append, sync=True)
        self.tracer.add_span_processor(self)

    def on_start(self, span: Span) -> None:
        self.live.append(span)

    @property
    def records(self) -> list[SpanRecord]:
        return [r for t in self.traces for r in t.spans]

    @property
    def calls(self) -> list[SpanRecord]:
        """The counted model calls, in start order."""
        return sorted((r for r in self.records if r.llm_call), key=lambda r: r.start_time)

    def live_span(self, record: SpanRecord) -> Span:
        return next(s for s in self.live if s.span_id == record.span_id)

    def ttft_ms(self, record: SpanRecord) -> float | None:
        value = self.live_span(record).attributes.get("llm.time_to_first_token_ms")
        return None if value is None else float(value)


def served_usage(served: Served) -> Usage:
    reader = usage_from_anthropic if served.provider == "anthropic" else usage_from_openai
    usage = reader(served.usage)
    assert usage is not None, f"the recording holds no usage: {served.source}"
    return usage


def assert_exact(calls: list[SpanRecord], served: list[Served]) -> None:
    """Reported usage: each call's tokens are the server's, and the total cost is exactly the
    server's usage at genai-prices' own price."""
    assert len(calls) == len(served), (len(calls), len(served))
    for record, answer in zip(calls, served, strict=True):
        assert record.cost_status is CostStatus.PRICED, record
        assert record.usage == served_usage(answer)
    total = sum(r.cost_usd or 0.0 for r in calls)
    assert total == pytest.approx(sum(s.catalogue_cost() for s in served), rel=1e-12, abs=0)


def assert_estimated(
    calls: list[SpanRecord], served: list[Served], tolerance: Tolerance | None = None
) -> None:
    """Estimated usage: marked as such, each call's input and output tokens within the
    stated tolerance of what the server recorded, and priced at the catalogue's rates."""
    assert len(calls) == len(served), (len(calls), len(served))
    for record, answer in zip(calls, served, strict=True):
        assert record.cost_status is CostStatus.ESTIMATED, record
        assert record.attributes.get("llm.usage.estimated") is True
        method = record.attributes.get("llm.usage.estimate_method")
        assert isinstance(method, str)
        allowed = tolerance or Estimate(Usage(), method).tolerance
        actual = served_usage(answer)
        assert allowed.allows(record.input_tokens, actual.input_tokens), (
            record.input_tokens,
            actual.input_tokens,
            allowed,
        )
        assert allowed.allows(record.output_tokens, actual.output_tokens), (
            record.output_tokens,
            actual.output_tokens,
            allowed,
        )
        assert answer.usage_sent is False  # the server really sent none
