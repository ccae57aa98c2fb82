"""Sealed records: what a finished span and a finished trace *are*, computed once.

When a span ends, :func:`seal` turns it into a :class:`SpanRecord` — immutable, in the
spirit of OpenTelemetry's ``ReadableSpan``. Every sink (span metrics, cost analytics,
budgets, the dashboard, the store, OTLP and JSONL export, the CLI) reads records and never
re-derives a fact. The seal:

* sanitises: names and attribute values become JSON-safe scalars or homogeneous lists
  (valid UTF-8, int64, no NaN; anything else becomes JSON text through the one
  serialiser), and credentials are scrubbed by the one redactor;
* derives the facts, each by one rule:

  - ``llm_call``: a counted model call — the innermost span that carries usage, or an LLM
    span with no counted call below it (a failed call has no usage but is still a call);
  - ``usage`` and ``cost_usd`` of that call, and ``cost_status``: ``priced``,
    ``unpriced`` (usage, but no price for the model), ``no_usage`` (the provider reported
    none: the cost is unknown, never $0) or ``estimated``;
  - ``model`` (what answered, else what was asked for), ``provider``;
  - ``user_id`` and ``session_id`` (the trace's, else the nearest ancestor's);
  - ``agent``: the span's ``agent.name`` attribute, else that of the enclosing AGENT span,
    else that span's name.

A :class:`TraceRecord` is built from the records of a trace's spans when it ends; its
:class:`UsageRollup` is the trace's one sum. Records read back from the store are built
with the same public constructors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs.pricing._usage import Usage
from agentos_obs.tracing._kinds import CostStatus, SpanKind, SpanStatus
from agentos_obs.tracing._rollup import NONE_LABEL, UsageRollup
from agentos_obs.tracing._sanitize import EMPTY, AttributeValue, clean_text, sanitize_attributes

__all__ = ["EventRecord", "SpanRecord", "TraceRecord", "union_ms"]

_FAILED = frozenset({SpanStatus.ERROR, SpanStatus.TIMEOUT})
_NO_USAGE = Usage()


class _Frozen:
    """Attributes set once in ``__init__``; any later assignment raises."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")


_set = object.__setattr__


def fill_span_record(
    record: SpanRecord,
    span_id: str,
    trace_id: str,
    parent_id: str | None,
    name: str,
    kind: SpanKind,
    status: SpanStatus,
    start_time: int,
    end_time: int,
    duration_ms: float,
    attributes: Mapping[str, AttributeValue],
    events: tuple[EventRecord, ...],
    llm_call: bool,
    usage: Usage,
    cost_usd: float | None,
    cost_status: CostStatus | None,
    model: str | None,
    provider: str | None,
    user_id: str | None,
    session_id: str | None,
    agent: str | None,
) -> SpanRecord:
    """Set every field of ``record`` from values already checked (the seal's fast path;
    the public constructor checks, then calls this)."""
    _set(record, "span_id", span_id)
    _set(record, "trace_id", trace_id)
    _set(record, "parent_id", parent_id)
    _set(record, "name", name)
    _set(record, "kind", kind)
    _set(record, "status", status)
    _set(record, "start_time", start_time)
    _set(record, "end_time", end_time)
    _set(record, "duration_ms", duration_ms)
    _set(record, "attributes", attributes)
    _set(record, "events", events)
    _set(record, "llm_call", llm_call)
    _set(record, "usage", usage)
    _set(record, "cost_usd", cost_usd)
    _set(record, "cost_status", cost_status)
    _set(record, "model", model)
    _set(record, "provider", provider)
    _set(record, "user_id", user_id)
    _set(record, "session_id", session_id)
    _set(record, "agent", agent)
    _set(record, "_trace", None)  # the TraceRecord this record is put in
    return record


class EventRecord(_Frozen):
    """Something that happened at a point in a span's life (sanitised)."""

    __slots__ = ("attributes", "name", "timestamp")
    name: str
    timestamp: int
    attributes: Mapping[str, AttributeValue]

    def __init__(
        self, name: str, timestamp: int, attributes: Mapping[str, Any] | None = None
    ) -> None:
        _set(self, "name", clean_text(name))
        _set(self, "timestamp", int(timestamp))
        _set(self, "attributes", sanitize_attributes(attributes) if attributes else EMPTY)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timestamp": self.timestamp, "attributes": _plain(self)}

    def __repr__(self) -> str:
        return f"EventRecord(name={self.name!r})"


class SpanRecord(_Frozen):
    """An ended span, sanitised, with its derived facts (see the module docstring).

    Read like a :class:`~agentos_obs.tracing.Span` (``name``, ``kind``, ``attributes``,
    ``input_tokens``, ``cost_usd``, ``to_dict()``…); it cannot be changed.
    """

    __slots__ = (
        "_trace",
        "agent",
        "attributes",
        "cost_status",
        "cost_usd",
        "duration_ms",
        "end_time",
        "events",
        "kind",
        "llm_call",
        "model",
        "name",
        "parent_id",
        "provider",
        "session_id",
        "span_id",
        "start_time",
        "status",
        "trace_id",
        "usage",
        "user_id",
    )
    span_id: str
    trace_id: str
    parent_id: str | None
    name: str
    kind: SpanKind
    status: SpanStatus
    start_time: int
    end_time: int
    duration_ms: float
    attributes: Mapping[str, AttributeValue]
    events: tuple[EventRecord, ...]
    llm_call: bool
    usage: Usage
    cost_usd: float | None
    cost_status: CostStatus | None
    model: str | None
    provider: str | None
    user_id: str | None
    session_id: str | None
    agent: str | None
    _trace: TraceRecord | None

    def __init__(
        self,
        *,
        span_id: str,
        trace_id: str,
        parent_id: str | None,
        name: str,
        kind: SpanKind,
        status: SpanStatus,
        start_time: int,
        end_time: int,
        duration_ms: float | None = None,
        attributes: Mapping[str, Any] | None = None,
        events: Iterable[EventRecord] = (),
        llm_call: bool = False,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        cost_status: CostStatus | None = None,
        model: str | None = None,
        provider: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        agent: str | None = None,
        sanitized: bool = False,
    ) -> None:
        """Build a record from known facts (the store's reader does; spans use :func:`seal`).

        ``attributes`` are sanitised unless ``sanitized`` says they already are.
        """
        if not attributes:
            attributes = EMPTY
        elif not sanitized:
            attributes = sanitize_attributes(attributes)
        fill_span_record(
            self,
            span_id,
            trace_id,
            parent_id,
            name if sanitized else clean_text(name),
            SpanKind(kind),
            SpanStatus(status),
            int(start_time),
            int(end_time),
            max(0.0, (end_time - start_time) / 1e6 if duration_ms is None else duration_ms),
            attributes,
            tuple(events),
            llm_call,
            usage if usage is not None else _NO_USAGE,
            cost_usd,
            cost_status,
            model,
            provider,
            user_id,
            session_id,
            agent,
        )

    # -- read like a Span --------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.model or ""

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens

    @property
    def cache_read_tokens(self) -> int:
        return self.usage.cache_read_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.usage.cache_write_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self.usage.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def counts_usage(self) -> bool:
        """True when this record's tokens and cost count towards totals."""
        return self.llm_call and self.cost_status is not CostStatus.NO_USAGE

    @property
    def has_usage(self) -> bool:
        return self.counts_usage

    @property
    def failed(self) -> bool:
        """ERROR or TIMEOUT (a cancelled span is not a failure of the app)."""
        return self.status in _FAILED

    @property
    def ended(self) -> bool:
        return True

    @property
    def latency_ms(self) -> float | None:
        """The call's latency: as measured by the caller (``llm.latency_ms``), else the
        duration of an LLM span; None for other spans."""
        measured = _milliseconds(self.attributes.get(attr.LLM_LATENCY_MS))
        if measured is not None:
            return measured
        return self.duration_ms if self.kind is SpanKind.LLM else None

    @property
    def time_to_first_token_ms(self) -> float | None:
        return _milliseconds(self.attributes.get(attr.LLM_TIME_TO_FIRST_TOKEN_MS))

    # -- the tree, through the trace record this record belongs to ----------------------
    @property
    def trace(self) -> TraceRecord | None:
        """The trace record this record is part of (None until the trace has ended)."""
        return self._trace  # type: ignore[no-any-return]

    @property
    def children(self) -> tuple[SpanRecord, ...]:
        trace = self._trace
        return () if trace is None else trace.children(self.span_id)

    @property
    def parent(self) -> SpanRecord | None:
        trace = self._trace
        if trace is None or self.parent_id is None:
            return None
        return trace.get_span(self.parent_id)  # type: ignore[no-any-return]

    def ancestor(self, kind: SpanKind) -> SpanRecord | None:
        """The nearest enclosing record (self included) of ``kind``."""
        node: SpanRecord | None = self
        seen: set[str] = set()
        while node is not None and node.span_id not in seen:
            if node.kind is kind:
                return node
            seen.add(node.span_id)
            node = node.parent
        return None

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "trace_id": self.trace_id,
            "name": self.name,
            "kind": self.kind.value,
            "duration_ms": self.duration_ms,
            "status": self.status.value,
            "attributes": _plain(self),
            "model_name": self.model_name,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": self.cost_usd,
            "provider": self.provider,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "events": [e.to_dict() for e in self.events],
            "llm_call": self.llm_call,
            "cost_status": None if self.cost_status is None else self.cost_status.value,
            "agent": self.agent,
            "user_id": self.user_id,
            "session_id": self.session_id,
        }

    def __repr__(self) -> str:
        return (
            f"SpanRecord(name={self.name!r}, kind={self.kind.value}, span_id={self.span_id}, "
            f"parent_id={self.parent_id}, status={self.status.value})"
        )


def _milliseconds(value: object) -> float | None:
    """A duration attribute in ms; None when absent or not a finite number >= 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    return None


def _plain(record: SpanRecord | EventRecord) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record.attributes.items()}


# -- the trace ----------------------------------------------------------------------------
class TraceRecord(_Frozen):
    """A finished trace: the records of its spans (in start order) and their one rollup.

    Read like a :class:`~agentos_obs.tracing.Trace` (``spans``, ``root_span``,
    ``total_cost_usd``, ``to_dict()``…). Per-key rollups and the children index are
    computed on first use, once.
    """

    __slots__ = (
        "_by_agent",
        "_by_id",
        "_by_model",
        "_children",
        "attributes",
        "end_time",
        "name",
        "remote_parent_id",
        "rollup",
        "root_span",
        "service_name",
        "session_id",
        "spans",
        "start_time",
        "status",
        "trace_id",
        "user_id",
    )
    trace_id: str
    name: str
    service_name: str | None
    attributes: Mapping[str, AttributeValue]
    spans: tuple[SpanRecord, ...]
    root_span: SpanRecord | None
    start_time: int
    end_time: int
    status: SpanStatus
    user_id: str | None
    session_id: str | None
    remote_parent_id: str | None
    rollup: UsageRollup
    _children: dict[str, tuple[SpanRecord, ...]] | None
    _by_id: dict[str, SpanRecord] | None
    _by_model: Mapping[str, UsageRollup] | None
    _by_agent: Mapping[str, UsageRollup] | None

    def __init__(
        self,
        *,
        trace_id: str,
        spans: Iterable[SpanRecord],
        name: str = "",
        service_name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        root_span_id: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        status: SpanStatus | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        remote_parent_id: str | None = None,
        sanitized: bool = False,
    ) -> None:
        records = spans if type(spans) is tuple else tuple(spans)
        root = None
        if root_span_id is not None:
            if records and records[0].span_id == root_span_id:
                root = records[0]
            else:
                root = next((s for s in records if s.span_id == root_span_id), None)
        if root is None and records:
            root = records[0]
        _set(self, "trace_id", trace_id)
        _set(self, "spans", records)
        _set(self, "root_span", root)
        if not name:
            name = root.name if root is not None else ""
        _set(self, "name", name if sanitized else clean_text(name))
        _set(self, "service_name", service_name)
        if not attributes:
            attributes = EMPTY
        elif not sanitized:
            attributes = sanitize_attributes(attributes)
        _set(self, "attributes", attributes)
        if start_time is None:
            start_time = min((s.start_time for s in records), default=0)
        if end_time is None:
            end_time = max((s.end_time for s in records), default=start_time)
        _set(self, "start_time", int(start_time))
        _set(self, "end_time", int(end_time))
        if status is None:
            status = _trace_status(root, records)
        _set(self, "status", status)
        if user_id is None and root is not None:
            user_id = root.user_id
        if session_id is None and root is not None:
            session_id = root.session_id
        _set(self, "user_id", user_id)
        _set(self, "session_id", session_id)
        _set(self, "remote_parent_id", remote_parent_id)
        _set(self, "rollup", UsageRollup.of(records))
        _set(self, "_by_model", None)
        _set(self, "_by_agent", None)
        _set(self, "_children", None)
        _set(self, "_by_id", None)
        for record in records:
            if record._trace is None:  # a record belongs to the first trace it is put in
                _set(record, "_trace", self)

    # -- read like a Trace -------------------------------------------------------------
    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.end_time - self.start_time) / 1e6)

    total_duration_ms = duration_ms

    @property
    def total_cost_usd(self) -> float:
        """Sum of the calls with a known cost (see ``rollup.cost_complete``)."""
        return self.rollup.cost_usd

    @property
    def total_tokens(self) -> int:
        return self.rollup.total_tokens

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
    def error_count(self) -> int:
        return sum(1 for s in self.spans if s.failed)

    @property
    def has_error(self) -> bool:
        return any(s.status is SpanStatus.ERROR for s in self.spans)

    @property
    def ended(self) -> bool:
        return True

    def usage_spans(self) -> Iterator[SpanRecord]:
        """The records whose usage counts (innermost spans carrying usage)."""
        return (s for s in self.spans if s.counts_usage)

    def usage_totals(self) -> dict[str, Any]:
        return self.rollup.to_dict()

    def get_span(self, span_id: str) -> SpanRecord | None:
        index = self._by_id
        if index is None:
            index = {s.span_id: s for s in self.spans}
            _set(self, "_by_id", index)
        return index.get(span_id)

    # -- derived once, on first use ----------------------------------------------------
    def children(self, span_id: str) -> tuple[SpanRecord, ...]:
        """The records whose parent is ``span_id``, in start order."""
        index = self._children
        if index is None:
            built: dict[str, list[SpanRecord]] = {}
            ids = {s.span_id for s in self.spans}
            for s in self.spans:
                if s.parent_id is not None and s.parent_id in ids and s.parent_id != s.span_id:
                    built.setdefault(s.parent_id, []).append(s)
            index = {k: tuple(v) for k, v in built.items()}
            _set(self, "_children", index)
        return index.get(span_id, ())

    def self_time_ms(self, record: SpanRecord) -> float:
        """``record``'s duration minus the union of its children's intervals in it."""
        start, end = record.start_time, record.end_time
        clipped = [
            (max(start, c.start_time), min(end, c.end_time))
            for c in self.children(record.span_id)
            if min(end, c.end_time) > max(start, c.start_time)
        ]
        busy = union_ms(clipped) if clipped else 0.0
        return max(0.0, record.duration_ms - busy)

    def by_model(self) -> Mapping[str, UsageRollup]:
        """One rollup per model (``(none)`` for calls without one)."""
        rollups = self._by_model
        if rollups is None:
            rollups = self._rollups_by(lambda s: s.model)
            _set(self, "_by_model", rollups)
        return rollups

    def by_agent(self) -> Mapping[str, UsageRollup]:
        """One rollup per agent (``(none)`` for calls outside any agent)."""
        rollups = self._by_agent
        if rollups is None:
            rollups = self._rollups_by(lambda s: s.agent)
            _set(self, "_by_agent", rollups)
        return rollups

    def _rollups_by(self, key: Any) -> Mapping[str, UsageRollup]:
        out: dict[str, UsageRollup] = {}
        for s in self.spans:
            if s.llm_call:
                name = key(s) or NONE_LABEL
                slot = out.get(name)
                if slot is None:
                    slot = out[name] = UsageRollup()
                    slot.traces = 1
                slot.add(s)
        return MappingProxyType(out)

    def to_dict(self) -> dict[str, Any]:
        rollup = self.rollup
        return {
            "trace_id": self.trace_id,
            "name": self.name,
            "total_duration_ms": self.duration_ms,
            "total_cost_usd": rollup.cost_usd,
            "total_tokens": rollup.total_tokens,
            "span_count": len(self.spans),
            "status": self.status.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "service_name": self.service_name,
            **{k: v for k, v in rollup.to_dict().items() if k not in ("cost_usd",)},
            "attributes": dict(self.attributes),
            "spans": [s.to_dict() for s in self.spans],
        }

    def __repr__(self) -> str:
        return f"TraceRecord(trace_id={self.trace_id}, name={self.name!r}, spans={len(self.spans)})"


def _trace_status(root: SpanRecord | None, records: tuple[SpanRecord, ...]) -> SpanStatus:
    if root is not None and root.status is not SpanStatus.OK:
        return root.status
    return SpanStatus.ERROR if any(s.status is SpanStatus.ERROR for s in records) else SpanStatus.OK


def union_ms(intervals: list[tuple[int, int]]) -> float:
    """Length of the union of [start, end) intervals in epoch ns, in ms."""
    intervals.sort()
    covered = 0
    cur_start, cur_end = intervals[0]
    for start, end in intervals[1:]:
        if start > cur_end:
            covered += cur_end - cur_start
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    covered += cur_end - cur_start
    return covered / 1e6
