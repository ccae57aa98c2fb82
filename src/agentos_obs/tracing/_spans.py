"""The trace data model: SpanKind, SpanStatus, SpanEvent, Span and Trace.

Times: ``start_time``/``end_time`` are epoch nanoseconds (for export and display);
durations come from a monotonic clock captured alongside, so a wall-clock jump never gives
a negative or inflated duration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import agentos_obs.attributes as attr
from agentos_obs._internal.redact import scrub
from agentos_obs.tracing._ids import new_span_id, new_trace_id
from agentos_obs.tracing._kinds import SpanKind, SpanStatus
from agentos_obs.tracing._records import SpanRecord, TraceRecord
from agentos_obs.tracing._rollup import UsageRollup

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["Span", "SpanEvent", "SpanKind", "SpanStatus", "Trace"]

_perf_ns = time.perf_counter_ns
_wall_ns = time.time_ns


class SpanEvent:
    """Something that happened at a point in a span's life."""

    __slots__ = ("attributes", "name", "timestamp")

    def __init__(
        self,
        name: str,
        timestamp: int | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.timestamp = _wall_ns() if timestamp is None else timestamp  # epoch ns
        self.attributes = attributes if attributes is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timestamp": self.timestamp, "attributes": self.attributes}

    def __repr__(self) -> str:
        return f"SpanEvent(name={self.name!r}, attributes={self.attributes!r})"


class Span:
    """One unit of work: an agent step, an LLM call, a tool call, a retrieval…

    Token counts and cost sit on the innermost span that made the LLM call; parents and the
    trace sum them without double counting (see :meth:`Trace.usage_spans`).
    """

    __slots__ = (
        "_agent",
        "_end_mono",
        "_inherited",
        "_parent",
        "_record",
        "_start_mono",
        "_trace",
        "_tracer",
        "attributes",
        "cache_read_tokens",
        "cache_write_tokens",
        "call_below",
        "children",
        "cost_usd",
        "end_time",
        "events",
        "input_tokens",
        "kind",
        "model_name",
        "name",
        "output_tokens",
        "parent_id",
        "provider",
        "reasoning_tokens",
        "span_id",
        "start_time",
        "status",
        "trace_id",
        "usage_below",
        "usage_recorded",
    )

    def __init__(
        self,
        name: str = "",
        kind: SpanKind = SpanKind.AGENT,
        *,
        span_id: str | None = None,
        parent_id: str | None = None,
        trace_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        start_time: int | None = None,
    ) -> None:
        self.span_id = span_id or new_span_id()
        self.parent_id = parent_id
        self.trace_id = trace_id or new_trace_id()
        self.name = name
        self.kind = kind
        self._start_mono = _perf_ns()
        self.start_time: int = _wall_ns() if start_time is None else start_time
        self.end_time: int | None = None
        self._end_mono: int | None = None
        self.status = SpanStatus.OK
        self.attributes: dict[str, Any] = attributes if attributes is not None else {}
        self.events: list[SpanEvent] = []
        self.children: list[Span] = []
        self.model_name = ""
        self.provider: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost_usd: float | None = None
        self._parent: Span | None = None
        self._trace: Trace | None = None
        self._tracer: Tracer | None = None
        self._agent: Span | None = self if kind is SpanKind.AGENT else None  # enclosing AGENT
        self._inherited: dict[str, str | None] | None = None  # memo of inherited attributes
        self._record: SpanRecord | None = None
        # Read by the seal (tracing._records): usage recorded here, usage recorded by a
        # descendant (ours is then not the call), a counted call sealed below us.
        self.usage_recorded = False
        self.usage_below = False
        self.call_below = False

    # -- prototype API -------------------------------------------------------------
    @property
    def duration_ms(self) -> float:
        end = self._end_mono if self._end_mono is not None else _perf_ns()
        return (end - self._start_mono) / 1e6

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> SpanEvent:
        event = SpanEvent(name, attributes=attributes)
        self.events.append(event)
        return event

    def set_attribute(self, key: str, value: Any) -> Span:
        self.attributes[key] = value
        return self

    def set_attributes(self, values: Mapping[str, Any]) -> Span:
        self.attributes.update(values)
        return self

    def set_error(self, error: str) -> None:
        self.status = SpanStatus.ERROR
        error = scrub(error)
        self.attributes["error"] = error
        self.attributes.setdefault(attr.ERROR_MESSAGE, error)

    def record_exception(self, exc: BaseException, status: SpanStatus = SpanStatus.ERROR) -> None:
        """Mark the span failed (or cancelled) by ``exc``: type and message, as an event too."""
        self.status = status
        etype = type(exc).__qualname__
        try:
            message = scrub(str(exc))  # provider errors often echo the api key
        except Exception:  # an app exception whose __str__ fails must still pass through
            message = f"<unprintable {etype}>"
        self.attributes[attr.ERROR_TYPE] = etype
        self.attributes[attr.ERROR_MESSAGE] = message
        if status is SpanStatus.ERROR:
            self.attributes["error"] = f"{etype}: {message}" if message else etype
        self.events.append(
            SpanEvent(
                "exception", attributes={"exception.type": etype, "exception.message": message}
            )
        )

    def finish(self) -> None:
        """End the span now (idempotent). Spans from a tracer are ended by the tracer."""
        if self._tracer is not None:
            self._tracer.end_span(self)
        else:
            self._mark_ended()

    def _mark_ended(self, end_mono: int | None = None) -> bool:
        if self._end_mono is not None:
            return False
        self._end_mono = _perf_ns() if end_mono is None else end_mono
        self.end_time = self.start_time + (self._end_mono - self._start_mono)
        return True

    # -- added ---------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._end_mono is not None

    @property
    def parent(self) -> Span | None:
        return self._parent

    @property
    def trace(self) -> Trace | None:
        return self._trace

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def has_usage(self) -> bool:
        return bool(
            self.usage_recorded
            or self.input_tokens
            or self.output_tokens
            or self.cost_usd is not None
        )

    @property
    def counts_usage(self) -> bool:
        """True when this span's tokens and cost count towards totals (innermost only)."""
        if self._record is not None:
            return self._record.counts_usage
        return self.has_usage and not self.usage_below

    @property
    def record(self) -> SpanRecord | None:
        """The sealed record of this span once it has ended (None before, or for spans
        not created by a tracer)."""
        return self._record

    @property
    def tracer(self) -> Tracer | None:
        """The tracer that created this span."""
        return self._tracer

    def mark_usage_below(self) -> None:
        """Tell the ancestors a descendant carries usage: theirs is not the call."""
        parent = self._parent
        while parent is not None and not parent.usage_below:
            parent.usage_below = True
            parent = parent._parent

    def mark_call(self) -> None:
        """Tell the ancestors a counted call was sealed below them."""
        parent = self._parent
        while parent is not None and not parent.call_below:
            parent.call_below = True
            parent = parent._parent

    def ancestor(self, kind: SpanKind) -> Span | None:
        """The nearest enclosing span (self included) of ``kind``."""
        if kind is SpanKind.AGENT:
            return self._agent
        span: Span | None = self
        while span is not None:
            if span.kind is kind:
                return span
            span = span._parent
        return None

    def inherited(self, key: str) -> str | None:
        """The nearest value of attribute ``key`` on this span or an ancestor, as text.

        Answers are memoised on the ancestors walked, so asking for every span of a deep
        trace stays linear in its size.
        """
        value = self.attributes.get(key)
        if value is not None:
            return str(value)
        path: list[Span] = []
        node = self._parent
        found: str | None = None
        while node is not None:
            memo = node._inherited
            if memo is not None and key in memo:
                found = memo[key]
                break
            value = node.attributes.get(key)
            if value is not None:
                found = str(value)
                break
            path.append(node)
            node = node._parent
        for walked in path:
            if walked._inherited is None:
                walked._inherited = {}
            walked._inherited[key] = found
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "trace_id": self.trace_id,
            "name": self.name,
            "kind": self.kind.value,
            "duration_ms": self.duration_ms,
            "status": self.status.value,
            "attributes": self.attributes,
            "model_name": self.model_name,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "provider": self.provider,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "events": [e.to_dict() for e in self.events],
        }

    def __repr__(self) -> str:
        return (
            f"Span(name={self.name!r}, kind={self.kind.value}, span_id={self.span_id}, "
            f"parent_id={self.parent_id}, status={self.status.value})"
        )


class Trace:
    """One end-to-end run: a LangChain root run, a LlamaIndex root span, a start_trace block."""

    __slots__ = (
        "_block",
        "_end_mono",
        "_exported",
        "_open",
        "_record",
        "_root_done",
        "_start_mono",
        "_tracer",
        "attributes",
        "name",
        "remote_parent_id",
        "root_span",
        "sampled",
        "spans",
        "start_time",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: str | None = None,
        root_span: Span | None = None,
        spans: list[Span] | None = None,
        *,
        name: str = "",
    ) -> None:
        self.trace_id = trace_id or new_trace_id()
        self.root_span = root_span
        self.spans: list[Span] = spans if spans is not None else []
        self.name = name
        self.attributes: dict[str, Any] = {}
        self.start_time = _wall_ns()
        self.sampled = True
        self._start_mono = _perf_ns()
        self._end_mono: int | None = None
        self._open = 0
        self._root_done = False
        self._block = False  # opened by start_trace: done when the block exits
        self._exported = False
        self._tracer: Tracer | None = None
        self._record: TraceRecord | None = None
        # Span id of the parent in another service when this trace continues a remote one
        # (W3C traceparent, an active OpenTelemetry span): the parent of its root spans.
        self.remote_parent_id: str | None = None

    # -- prototype API -------------------------------------------------------------
    @property
    def total_duration_ms(self) -> float:
        if self._end_mono is not None:
            return (self._end_mono - self._start_mono) / 1e6
        if self.root_span is not None:
            return self.root_span.duration_ms
        return 0.0

    @property
    def total_cost_usd(self) -> float:
        """Sum of the calls with a known cost (see ``rollup.cost_complete``)."""
        return self.rollup.cost_usd

    @property
    def total_tokens(self) -> int:
        return self.rollup.total_tokens

    def to_dict(self) -> dict[str, Any]:
        if self._record is not None:
            return self._record.to_dict()
        rollup = self.rollup
        return {
            "trace_id": self.trace_id,
            "name": self.name,
            "total_duration_ms": self.total_duration_ms,
            "total_cost_usd": rollup.cost_usd,
            "total_tokens": rollup.total_tokens,
            "span_count": len(self.spans),
            "status": self.status.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "user_id": self.user_id,
            "session_id": self.session_id,
            **{k: v for k, v in rollup.to_dict().items() if k != "cost_usd"},
            "attributes": self.attributes,
            "spans": [s.to_dict() for s in self.spans],
        }

    # -- added ---------------------------------------------------------------------
    @property
    def record(self) -> TraceRecord | None:
        """The sealed record handed to exporters, once the trace has ended."""
        return self._record

    @property
    def rollup(self) -> UsageRollup:
        """Usage of the trace's counted calls: final once it has ended, so far before."""
        if self._record is not None:
            return self._record.rollup
        return UsageRollup.of(s._record for s in list(self.spans) if s._record is not None)

    def usage_spans(self) -> Iterator[SpanRecord]:
        """Records of the calls whose usage counts (innermost spans carrying usage)."""
        if self._record is not None:
            return self._record.usage_spans()
        return (s._record for s in list(self.spans) if s._record and s._record.counts_usage)

    def usage_totals(self) -> dict[str, Any]:
        return self.rollup.to_dict()

    @property
    def total_input_tokens(self) -> int:
        return self.rollup.input_tokens

    @property
    def total_output_tokens(self) -> int:
        return self.rollup.output_tokens

    @property
    def unpriced_llm_calls(self) -> int:
        return self.rollup.unpriced_llm_calls

    @property
    def end_time(self) -> int | None:
        if self._end_mono is None:
            return None
        return self.start_time + (self._end_mono - self._start_mono)

    @property
    def ended(self) -> bool:
        return self._exported

    @property
    def has_error(self) -> bool:
        return any(s.status is SpanStatus.ERROR for s in self.spans)

    @property
    def status(self) -> SpanStatus:
        if self.root_span is not None and self.root_span.status is not SpanStatus.OK:
            return self.root_span.status
        return SpanStatus.ERROR if self.has_error else SpanStatus.OK

    def _root_attr(self, key: str) -> Any:
        value = self.attributes.get(key)
        if value is None and self.root_span is not None:
            value = self.root_span.attributes.get(key)
        return value

    @property
    def user_id(self) -> str | None:
        value = self._root_attr(attr.USER_ID)
        return None if value is None else str(value)

    @property
    def session_id(self) -> str | None:
        value = self._root_attr(attr.SESSION_ID)
        return None if value is None else str(value)

    def get_span(self, span_id: str) -> Span | None:
        for s in self.spans:
            if s.span_id == span_id:
                return s
        return None

    def __repr__(self) -> str:
        return f"Trace(trace_id={self.trace_id}, name={self.name!r}, spans={len(self.spans)})"
