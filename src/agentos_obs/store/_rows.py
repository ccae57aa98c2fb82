"""Rows of the span store: sealed records as SQLite parameters, and trace rows as they
change while a trace runs, ends, and merges with its other parts.

Runs on the store's writer thread. A span's row is its
:class:`~agentos_obs.tracing.SpanRecord`'s fields and derived facts (counted call, usage,
cost and cost status, model, provider, agent, latency) plus its key and self time; a trace
row's counters are the sums of the span rows written for it (so parts of a distributed
trace, and spans written as they end, add up), and its other fields come from its
:class:`~agentos_obs.tracing.TraceRecord` when it ends. Nothing here looks at another
span, so a row costs the same at any depth. Attributes and events become JSON text through
the one serialiser (:func:`agentos_obs._internal.jsonsafe.dumps`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentos_obs._internal.jsonsafe import dumps
from agentos_obs.store._rollups import FOLD_COLUMNS
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus, TraceRecord

__all__ = [
    "FOLD_FROM_ROW",
    "INSERT_SPAN",
    "INSERT_TRACE",
    "OPEN_STATUSES",
    "SELECT_TRACES",
    "SPAN_COLUMNS",
    "TRACE_COLUMNS",
    "UPDATE_TRACE",
    "TraceRow",
    "attributes_json",
    "merge_status",
    "span_row",
]

OPEN_STATUSES = frozenset({"running", "incomplete"})
_SEVERITY = {"error": 3, "timeout": 2, "cancelled": 1, "ok": 0}

SPAN_COLUMNS = (
    "span_key",
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "status",
    "start_time",
    "end_time",
    "duration_ms",
    "latency_ms",
    "model_name",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "counts_usage",
    "llm_call",
    "agent_name",
    "attributes",
    "events",
    "cost_status",
    "self_ms",
)
_SPAN_INDEX = {name: i for i, name in enumerate(SPAN_COLUMNS)}
# Positions, in a span row, of the columns the rollup fold reads (in FOLD_COLUMNS order).
FOLD_FROM_ROW = tuple(_SPAN_INDEX[name] for name in FOLD_COLUMNS)
INSERT_SPAN = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"
)


# The serialiser's own settings (jsonsafe.dumps): for a record's attributes, which the seal
# made JSON-safe already, the standard encoder writes the same text without the walk
# dumps() makes to repair what needs no repair. Anything it refuses (NaN, a type it cannot
# encode) or text that is not valid UTF-8 goes through dumps() itself.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_KIND = {kind: kind.value for kind in SpanKind}
_STATUS = {status: status.value for status in SpanStatus}
_COST_STATUS = {status: status.value for status in CostStatus}


def attributes_json(attributes: Mapping[str, Any]) -> str:
    """``dumps(attributes)`` of sanitised attributes, faster."""
    if not attributes:
        return "{}"
    try:
        text = _encode(dict(attributes))
        if not text.isascii():
            text.encode("utf-8")  # lone surrogates raise: dumps() replaces them
    except (TypeError, ValueError):
        return dumps(attributes)
    return text


def span_row(record: SpanRecord, span_key: int, self_ms: float) -> tuple[Any, ...]:
    """The ``spans`` row of one record (the column order of :data:`SPAN_COLUMNS`)."""
    usage = record.usage
    status = record.cost_status
    latency = record.latency_ms
    if latency is None and record.llm_call:
        latency = record.duration_ms  # a call's latency is its duration unless measured
    return (
        span_key,
        record.trace_id,
        record.span_id,
        record.parent_id,
        record.name,
        _KIND[record.kind],
        _STATUS[record.status],
        record.start_time,
        record.end_time,
        record.duration_ms,
        latency,
        record.model,
        record.provider,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        record.cost_usd,
        int(record.llm_call and status is not CostStatus.NO_USAGE),
        int(record.llm_call),
        record.agent,
        attributes_json(record.attributes),
        dumps([event.to_dict() for event in record.events]) if record.events else "[]",
        None if status is None else _COST_STATUS[status],
        self_ms,
    )


def merge_status(old: str, new: str) -> str:
    """The status of a trace whose parts ended as ``old`` and ``new``: the most severe."""
    return old if _SEVERITY.get(old, 0) >= _SEVERITY.get(new, 0) else new


TRACE_COLUMNS = (
    "trace_key",
    "trace_id",
    "name",
    "service_name",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "root_span_id",
    "root_kind",
    "remote_parent_id",
    "user_id",
    "session_id",
    "span_count",
    "error_count",
    "llm_calls",
    "unpriced_llm_calls",
    "no_usage_llm_calls",
    "estimated_llm_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "attributes",
    "models",
    "agents",
    "writer_id",
    "updated_at",
    "folded",
    "counted",
)
INSERT_TRACE = (
    f"INSERT INTO traces ({', '.join(TRACE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TRACE_COLUMNS))})"
)
UPDATE_TRACE = (
    "UPDATE traces SET " + ", ".join(f"{c} = ?" for c in TRACE_COLUMNS[2:]) + " WHERE trace_key = ?"
)
SELECT_TRACES = f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id IN "


class TraceRow:
    """A ``traces`` row being changed by one batch (live spans, an end, another part)."""

    __slots__ = ("agents", "agents_added", "changed", "is_new", "models", "models_added", "values")

    def __init__(self, values: dict[str, Any], *, is_new: bool) -> None:
        self.values = values
        self.is_new = is_new
        self.changed = is_new
        self.models: list[str] = _json_list(values["models"])
        self.agents: list[str] = _json_list(values["agents"])
        self.models_added: list[str] = []
        self.agents_added: list[str] = []

    @classmethod
    def new(cls, trace_key: int, trace_id: str, start_time: int) -> TraceRow:
        values: dict[str, Any] = dict.fromkeys(TRACE_COLUMNS)
        values.update(
            trace_key=trace_key,
            trace_id=trace_id,
            name="",
            start_time=start_time,
            duration_ms=0.0,
            status="running",
            span_count=0,
            error_count=0,
            llm_calls=0,
            unpriced_llm_calls=0,
            no_usage_llm_calls=0,
            estimated_llm_calls=0,
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=0.0,
            attributes="{}",
            folded=-1,
            counted=0,
        )
        return cls(values, is_new=True)

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> TraceRow:
        return cls(dict(zip(TRACE_COLUMNS, row, strict=True)), is_new=False)

    # -- reading -------------------------------------------------------------------------
    @property
    def key(self) -> int:
        return int(self.values["trace_key"])

    @property
    def status(self) -> str:
        return str(self.values["status"])

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def params(self) -> tuple[Any, ...]:
        v = self.values
        v["models"] = json.dumps(self.models) if self.models else None
        v["agents"] = json.dumps(self.agents) if self.agents else None
        if self.is_new:
            return tuple(v[c] for c in TRACE_COLUMNS)
        return (*(v[c] for c in TRACE_COLUMNS[2:]), v["trace_key"])

    # -- changing ------------------------------------------------------------------------
    def add_span(self, record: SpanRecord) -> None:
        """A span row was written for this trace: its counters and times grow."""
        v = self.values
        self.changed = True
        v["span_count"] += 1
        if record.failed:
            v["error_count"] += 1
        if record.start_time < v["start_time"]:
            v["start_time"] = record.start_time
        if v["end_time"] is None or record.end_time > v["end_time"]:
            v["end_time"] = record.end_time
        v["duration_ms"] = max(0.0, (v["end_time"] - v["start_time"]) / 1e6)
        if v["user_id"] is None and record.user_id is not None:
            v["user_id"] = record.user_id
        if v["session_id"] is None and record.session_id is not None:
            v["session_id"] = record.session_id
        model = record.model
        if model and model not in self.models:
            self.models.append(model)
            self.models.sort()
            self.models_added.append(model)
        agent = record.agent
        if agent and record.kind is SpanKind.AGENT and agent not in self.agents:
            self.agents.append(agent)
            self.agents.sort()
            self.agents_added.append(agent)
        if not record.llm_call:
            return
        v["llm_calls"] += 1
        status = record.cost_status
        if status is CostStatus.NO_USAGE:
            v["no_usage_llm_calls"] += 1
            return
        if status is CostStatus.ESTIMATED:
            v["estimated_llm_calls"] += 1
        if record.cost_usd is None:
            v["unpriced_llm_calls"] += 1
        else:
            v["cost_usd"] += record.cost_usd
        usage = record.usage
        v["input_tokens"] += usage.input_tokens
        v["output_tokens"] += usage.output_tokens
        v["cache_read_tokens"] += usage.cache_read_tokens
        v["cache_write_tokens"] += usage.cache_write_tokens
        v["reasoning_tokens"] += usage.reasoning_tokens

    def started(self, name: str, start_time: int, remote_parent_id: str | None) -> None:
        """The trace's root span started (the trace shows as running from now)."""
        v = self.values
        self.changed = True
        if not v["name"]:
            v["name"] = name
        if start_time < v["start_time"]:
            v["start_time"] = start_time
        if v["remote_parent_id"] is None:
            v["remote_parent_id"] = remote_parent_id

    def reopen(self) -> None:
        """A span arrived for a trace declared incomplete: it is running after all."""
        if self.status == "incomplete":
            self.values["status"] = "running"
            self.changed = True

    def end(self, trace: TraceRecord) -> None:
        """One part of the trace ended (``export``): its record settles the row.

        Counters are not taken from the record: they are the sums of the span rows
        written, which :meth:`add_span` keeps.
        """
        v = self.values
        self.changed = True
        was_open = self.is_open
        root = trace.root_span
        ours_is_root = v["remote_parent_id"] is not None and trace.remote_parent_id is None
        if was_open or ours_is_root:
            v["name"] = trace.name
            v["root_span_id"] = root.span_id if root is not None else None
            v["root_kind"] = root.kind.value if root is not None else None
            v["remote_parent_id"] = trace.remote_parent_id
        if was_open:
            v["service_name"] = trace.service_name or v["service_name"]
            # Settled by the trace record's rule (the root's), replacing the provisional
            # first-span value shown while it ran, so every output names the same user.
            v["user_id"] = trace.user_id
            v["session_id"] = trace.session_id
            v["start_time"] = trace.start_time
            v["end_time"] = trace.end_time
            v["duration_ms"] = trace.duration_ms
            v["status"] = trace.status.value
            v["attributes"] = dumps(trace.attributes) if trace.attributes else "{}"
            return
        v["service_name"] = v["service_name"] or trace.service_name
        if v["user_id"] is None:
            v["user_id"] = trace.user_id
        if v["session_id"] is None:
            v["session_id"] = trace.session_id
        v["start_time"] = min(v["start_time"], trace.start_time)
        v["end_time"] = max(v["end_time"] or 0, trace.end_time)
        v["duration_ms"] = max(0.0, (v["end_time"] - v["start_time"]) / 1e6)
        v["status"] = merge_status(self.status, trace.status.value)
        if trace.attributes:
            v["attributes"] = dumps({**_json_object(v["attributes"]), **trace.attributes})


def _json_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _json_object(text: str | None) -> dict[str, Any]:
    # A row written by schema version 1 may hold JSON that strict parsers reject (NaN).
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
