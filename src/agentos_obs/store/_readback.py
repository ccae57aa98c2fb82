"""Stored rows read back as the records every sink reads: :class:`SpanRecord` and
:class:`TraceRecord`, built through their public constructors.

The writer stored what the seal produced, so values are taken as sanitised
(``sanitized=True``); JSON only loses the tuple type of list values, which is restored here.
A value that is not of a sealed shape (a database written before the seal) goes through the
seal's own sanitiser instead. The derived facts come from their columns: ``llm_call``, the
token columns (usage), ``cost_usd``, ``cost_status`` (derived from ``llm_call``,
``counts_usage`` and ``cost_usd`` when the column is absent), ``model_name``, ``provider``,
``agent_name``, and the trace's user and session.

Columns are read tolerantly (``SELECT *`` rows as dicts, a default when a column is
absent), so a store of an older or newer schema version reads back the facts it has.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs._internal.jsonsafe import INT64_MAX, INT64_MIN
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    AttributeValue,
    CostStatus,
    EventRecord,
    SpanKind,
    SpanRecord,
    SpanStatus,
    TraceRecord,
    sanitize_attributes,
)

__all__ = ["column", "json_column", "span_records", "stored_attributes", "trace_record"]

Row = Mapping[str, Any]  # a stored row as a dict (``dict(sqlite3.Row)``): any columns

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})


def column(row: Row, name: str, default: Any = None) -> Any:
    """``row[name]``, or ``default`` when the store's schema has no such column (or NULL)."""
    value = row.get(name)
    return default if value is None else value


def json_column(row: Row, name: str, default: Any) -> Any:
    """A JSON text column decoded; ``default`` when absent, empty or not JSON."""
    text = column(row, name)
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _sealed_shape(value: Any) -> AttributeValue | None:
    """``value`` if it is what the seal stores (JSON turns its tuples into lists), else None."""
    kind = type(value)
    if kind is str or kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else None  # type: ignore[no-any-return]
    if kind is float:
        return value if math.isfinite(value) else None  # type: ignore[no-any-return]
    if kind is list:
        kinds = {type(item) for item in value}
        if not kinds:
            return ()
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            items = tuple(value)
            if all(_sealed_shape(item) is not None for item in items):
                return items
    return None


def stored_attributes(data: Any) -> Mapping[str, AttributeValue]:
    """Decoded stored attributes as a read-only mapping of sealed values."""
    if not isinstance(data, dict) or not data:
        return _EMPTY
    out: dict[str, AttributeValue] = {}
    odd: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        sealed = _sealed_shape(value)
        if sealed is None:
            odd[key] = value
        else:
            out[key] = sealed
    if odd:  # not written by the seal: sanitise and scrub these the way the seal does
        out.update(sanitize_attributes(odd))
    return MappingProxyType(out)


def _enum(enum: Any, value: Any, default: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return default


def _cost_status(row: Row, llm_call: bool, counts_usage: bool) -> CostStatus | None:
    stored = _enum(CostStatus, column(row, "cost_status"), None)
    if stored is not None or not llm_call:
        return stored if llm_call else None
    if not counts_usage:
        return CostStatus.NO_USAGE
    return CostStatus.UNPRICED if column(row, "cost_usd") is None else CostStatus.PRICED


def _events(row: Row, start_time: int) -> tuple[EventRecord, ...]:
    events = json_column(row, "events", [])
    if not isinstance(events, list):
        return ()
    out = []
    for event in events:
        if isinstance(event, dict):
            stamp = event.get("timestamp")
            out.append(
                EventRecord(
                    str(event.get("name") or ""),
                    stamp if isinstance(stamp, int) else start_time,
                    event.get("attributes") if isinstance(event.get("attributes"), dict) else None,
                )
            )
    return tuple(out)


def _usage(row: Row) -> Usage:
    return Usage(
        input_tokens=int(column(row, "input_tokens", 0)),
        output_tokens=int(column(row, "output_tokens", 0)),
        cache_read_tokens=int(column(row, "cache_read_tokens", 0)),
        cache_write_tokens=int(column(row, "cache_write_tokens", 0)),
        reasoning_tokens=int(column(row, "reasoning_tokens", 0)),
    )


def span_records(
    rows: Iterable[Row], *, user_id: str | None, session_id: str | None
) -> list[SpanRecord]:
    """The records of one trace's span rows (in the order given).

    User and session follow the seal's rule: the trace's, else the nearest value on the span
    or its ancestors (walked through the stored parent ids, memoised, so linear).
    """
    parsed = []
    for row in rows:
        attributes = stored_attributes(json_column(row, "attributes", {}))
        parsed.append((row, attributes))
    parents = {str(row["span_id"]): column(row, "parent_id") for row, _ in parsed}
    own = {str(row["span_id"]): attributes for row, attributes in parsed}

    def nearest(span_id: str, key: str, memo: dict[str, str | None]) -> str | None:
        path: list[str] = []
        walked: set[str] = set()
        found: str | None = None
        node: str | None = span_id
        while node is not None and node in own and node not in walked:
            if node in memo:
                found = memo[node]
                break
            path.append(node)
            walked.add(node)
            value = own[node].get(key)
            if value is not None:
                found = str(value)
                break
            node = parents.get(node)
        for visited in path:  # every span walked has the same nearest value
            memo[visited] = found
        return found

    users: dict[str, str | None] = {}
    sessions: dict[str, str | None] = {}
    records = []
    for row, attributes in parsed:
        span_id = str(row["span_id"])
        start = int(row["start_time"])
        duration = float(column(row, "duration_ms", 0.0))
        end = column(row, "end_time")
        llm_call = bool(column(row, "llm_call", 0))
        counts = bool(column(row, "counts_usage", 0))
        # A span that repeats its call's usage (counts_usage = 0) keeps it, as sealed.
        records.append(
            SpanRecord(
                span_id=span_id,
                trace_id=str(row["trace_id"]),
                parent_id=column(row, "parent_id"),
                name=str(column(row, "name", "")),
                kind=_enum(SpanKind, column(row, "kind"), SpanKind.CHAIN),
                status=_enum(SpanStatus, column(row, "status"), SpanStatus.OK),
                start_time=start,
                end_time=int(end) if end is not None else start + int(duration * 1e6),
                duration_ms=duration,
                attributes=attributes,
                events=_events(row, start),
                llm_call=llm_call,
                usage=_usage(row),
                cost_usd=column(row, "cost_usd"),
                cost_status=_cost_status(row, llm_call, counts),
                model=column(row, "model_name") or None,
                provider=column(row, "provider") or None,
                user_id=user_id if user_id is not None else nearest(span_id, attr.USER_ID, users),
                session_id=(
                    session_id
                    if session_id is not None
                    else nearest(span_id, attr.SESSION_ID, sessions)
                ),
                agent=column(row, "agent_name"),
                sanitized=True,
            )
        )
    return records


def trace_record(row: Row, span_rows: Iterable[Row]) -> TraceRecord:
    """The :class:`TraceRecord` of a stored trace row and its span rows (start order)."""
    user_id = column(row, "user_id")
    session_id = column(row, "session_id")
    end = column(row, "end_time")
    return TraceRecord(
        trace_id=str(row["trace_id"]),
        spans=span_records(span_rows, user_id=user_id, session_id=session_id),
        name=str(column(row, "name", "")),
        service_name=column(row, "service_name"),
        attributes=stored_attributes(json_column(row, "attributes", {})),
        root_span_id=column(row, "root_span_id"),
        start_time=int(row["start_time"]),
        end_time=int(end) if end else None,
        status=_enum(SpanStatus, column(row, "status"), None),
        user_id=user_id,
        session_id=session_id,
        remote_parent_id=column(row, "remote_parent_id"),
        sanitized=True,
    )
