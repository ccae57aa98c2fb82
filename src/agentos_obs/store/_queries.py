"""Read side of the span store: the SQL behind ``SQLiteStore``'s query methods, and the
functions the CLI and the dashboard call.

Every function takes an open ``sqlite3.Connection`` (autocommit mode) and returns plain
dicts; times are epoch nanoseconds, durations milliseconds, windows are on the trace's
start (``since`` inclusive, ``until`` exclusive). None of them loads a window's spans:

* trace lists and single traces read the ``traces`` table (one row per trace, indexed) and
  a trace's spans as one key range;
* the overview, breakdowns, time series, stages, costs and ``/metrics`` read the rollups
  kept at write time (``_rollups.py``), exactly over any window (``_gather.py``);
* export and re-pricing stream with keyset paging: memory and time per page are the same
  at any offset.

Percentiles are nearest-rank (the value of rank ceil(n * p / 100) in ascending order),
read from DDSketch bins: within 1 % of the exact value, and exact for a single value.
Traces still ``running`` are listed and shown with the spans written so far; the
aggregates count a trace once it has ended or been declared ``incomplete`` (the spans and
cost of an incomplete trace count; its duration does not).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from agentos_obs.store import _hll as hll
from agentos_obs.store._gather import Merged, cover, gather, raw_fold
from agentos_obs.store._rollups import (
    DIM_AGENT,
    DIM_ALL,
    DIM_KIND,
    DIM_MINUTE,
    DIM_MODEL,
    DIM_USER,
    DIM_USER_DAY,
    SEQ_BITS,
    SEQ_MASK,
    WIDTH_S,
)
from agentos_obs.store._schema_v3 import MEMBER_AGENT, MEMBER_MODEL
from agentos_obs.tracing import SpanStatus

__all__ = [
    "AGGREGATE_KEYS",
    "FAILED_STATUSES",
    "LONG_INPUT_TOKENS",
    "ORDERABLE",
    "STATUSES",
    "aggregate",
    "change_marker",
    "count_traces",
    "filter_options",
    "get_trace",
    "iter_export_lines",
    "iter_traces",
    "iter_usage_rows",
    "list_traces",
    "raw_window_fold",
    "stages",
    "summary",
    "timeseries",
    "to_epoch_ns",
    "usage_rows",
]

TimeArg = datetime | timedelta | float | int | None

# Statuses that count as failures in error counts and rates; "cancelled" (an abandoned
# stream, a cancelled task) is not a failure of the app.
FAILED_STATUSES = ("error", "timeout")
STATUSES = (*(status.value for status in SpanStatus), "running", "incomplete")
_STATUS_VALUES = frozenset(STATUSES)

AGGREGATE_KEYS = ("model", "agent", "user", "day")
ORDERABLE = {
    "start_time": "t.start_time",
    "duration_ms": "t.duration_ms",
    "cost_usd": "t.cost_usd",
    "total_tokens": "(t.input_tokens + t.output_tokens)",
}
# The smallest input size above which a catalogue price changes tier (genai-prices);
# spans.long_input_calls indexes the calls above it, for exact re-pricing.
LONG_INPUT_TOKENS = 32_000

_NS_THRESHOLD = 1e15  # a number this large is epoch nanoseconds, not seconds
_NS = 1_000_000_000

_TRACE_COLUMNS = (
    "t.trace_id, t.name, t.service_name, t.start_time, t.end_time, t.duration_ms, t.status, "
    "t.root_span_id, t.root_kind, t.remote_parent_id, t.user_id, t.session_id, t.span_count, "
    "t.error_count, t.llm_calls, t.unpriced_llm_calls, t.no_usage_llm_calls, "
    "t.estimated_llm_calls, t.input_tokens, t.output_tokens, t.cache_read_tokens, "
    "t.cache_write_tokens, t.reasoning_tokens, t.cost_usd, t.attributes, t.models, t.agents"
)
_SPAN_COLUMNS = (
    "span_id, parent_id, trace_id, name, kind, status, start_time, end_time, duration_ms, "
    "latency_ms, model_name, provider, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_usd, counts_usage, llm_call, cost_status, "
    "agent_name, attributes, events, self_ms"
)
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_LATENCY_FIELDS = (
    "latency_avg_ms",
    "latency_max_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)


def to_epoch_ns(value: TimeArg, *, now_ns: int | None = None) -> int | None:
    """A time bound as epoch nanoseconds.

    Accepts ``None``; a ``datetime`` (naive means UTC); a ``timedelta`` meaning "that long
    ago"; or a number of epoch seconds. Numbers above 1e15 are read as epoch nanoseconds,
    the unit of ``start_time`` in the rows, so a row's time can be passed back as a bound.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time bound cannot be a bool")
    if isinstance(value, timedelta):
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(value.total_seconds() * 1e9)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1e9)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"a time bound must be finite, got {value!r}")
        return int(value) if abs(value) >= _NS_THRESHOLD else int(value * 1e9)
    raise TypeError(f"unsupported time bound {value!r}: use datetime, timedelta or seconds")


def _span_range(trace_key_sql: str) -> str:
    return (
        f"span_key BETWEEN ({trace_key_sql} << {SEQ_BITS}) "
        f"AND (({trace_key_sql} << {SEQ_BITS}) | {SEQ_MASK})"
    )


def _time_clause(column: str, since: TimeArg, until: TimeArg) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    start = to_epoch_ns(since)
    end = to_epoch_ns(until)
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return clauses, params


def _statuses(status: str | SpanStatus | Iterable[str | SpanStatus]) -> list[str]:
    items: Iterable[str | SpanStatus]
    items = [status] if isinstance(status, (str, SpanStatus)) else status
    values = []
    for item in items:
        value = item.value if isinstance(item, SpanStatus) else str(item).lower()
        if value not in _STATUS_VALUES:
            raise ValueError(f"status must be one of {sorted(_STATUS_VALUES)}, got {item!r}")
        values.append(value)
    return values


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _trace_where(
    *,
    since: TimeArg = None,
    until: TimeArg = None,
    status: str | SpanStatus | Iterable[str | SpanStatus] | None = None,
    model: str | None = None,
    agent: str | None = None,
    user: str | None = None,
    session: str | None = None,
    min_cost: float | None = None,
    min_duration_ms: float | None = None,
    search: str | None = None,
) -> tuple[str, list[Any]]:
    clauses, params = _time_clause("t.start_time", since, until)
    if status is not None:
        values = _statuses(status)
        clauses.append(f"t.status IN ({', '.join('?' * len(values))})" if values else "0")
        params.extend(values)
    for dim, name in ((MEMBER_MODEL, model), (MEMBER_AGENT, agent)):
        if name is not None:
            # Checked per candidate row (a primary-key probe): a newest-first page stops
            # when it is full instead of collecting every trace of a common model first.
            clauses.append(
                "EXISTS (SELECT 1 FROM trace_members m WHERE m.dim = ? AND m.key = ? "
                "AND m.trace_key = t.trace_key)"
            )
            params.extend([dim, name])
    if user is not None:
        clauses.append("t.user_id = ?")
        params.append(user)
    if session is not None:
        clauses.append("t.session_id = ?")
        params.append(session)
    if min_cost is not None:
        clauses.append("t.cost_usd >= ?")
        params.append(float(min_cost))
    if min_duration_ms is not None:
        clauses.append("t.duration_ms >= ?")
        params.append(float(min_duration_ms))
    if search:
        like = "LIKE ? ESCAPE '\\'"
        # Span names are matched within each candidate trace's own key range: a newest
        # page stops as soon as it is full instead of scanning every span first.
        clause = (
            f"(t.name {like} OR t.trace_id {like} OR t.user_id {like} OR t.session_id {like} "
            f"OR t.models {like} OR EXISTS (SELECT 1 FROM spans s WHERE s."
            f"{_span_range('t.trace_key')} AND (s.name {like} OR s.model_name {like})))"
        )
        clauses.append(clause)
        params.extend([_like_pattern(search)] * clause.count("?"))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _json_or(value: str | None, default: Any) -> Any:
    if not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _trace_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["attributes"] = _json_or(data.get("attributes"), {})
    data["total_tokens"] = data["input_tokens"] + data["output_tokens"]
    data["models"] = sorted(_json_or(data.get("models"), []))
    data["agents"] = sorted(_json_or(data.get("agents"), []))
    return data


def _rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    cursor = conn.execute(sql, list(params))
    cursor.row_factory = sqlite3.Row
    return cursor.fetchall()


# -- traces ------------------------------------------------------------------------------


def list_traces(
    conn: sqlite3.Connection,
    *,
    limit: int = 50,
    offset: int = 0,
    order_by: str = "start_time",
    descending: bool = True,
    **filters: Any,
) -> list[dict[str, Any]]:
    where, params = _trace_where(**filters)
    column = ORDERABLE.get(order_by)
    if column is None:
        raise ValueError(f"order_by must be one of {sorted(ORDERABLE)}, got {order_by!r}")
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {_TRACE_COLUMNS} FROM traces t{where} "
        f"ORDER BY {column} {direction}, t.trace_id LIMIT ? OFFSET ?"
    )
    rows = _rows(conn, sql, [*params, max(0, int(limit)), max(0, int(offset))])
    return [_trace_dict(row) for row in rows]


def count_traces(conn: sqlite3.Connection, **filters: Any) -> int:
    where, params = _trace_where(**filters)
    row = conn.execute(f"SELECT COUNT(*) FROM traces t{where}", params).fetchone()
    return int(row[0])


_SPAN_NAMES = tuple(c.strip() for c in _SPAN_COLUMNS.split(","))


def _json_object(text: str | None) -> Any:
    return {} if text == "{}" else _json_or(text, {})


def _json_array(text: str | None) -> Any:
    return [] if text == "[]" else _json_or(text, [])


def _span_dict(values: tuple[Any, ...]) -> dict[str, Any]:
    data = dict(zip(_SPAN_NAMES, values, strict=True))
    data["attributes"] = _json_object(data["attributes"])
    data["events"] = _json_array(data["events"])
    data["counts_usage"] = bool(data["counts_usage"])
    data["llm_call"] = bool(data["llm_call"])
    data["total_tokens"] = data["input_tokens"] + data["output_tokens"]
    if data["latency_ms"] is None:
        data["latency_ms"] = data["duration_ms"]
    if data["self_ms"] is None:
        data["self_ms"] = data["duration_ms"]
    return data


def _spans_of(conn: sqlite3.Connection, trace_key: int) -> list[dict[str, Any]]:
    low = trace_key << SEQ_BITS
    rows = conn.execute(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE span_key BETWEEN ? AND ? "
        "ORDER BY start_time, span_key",
        (low, low | SEQ_MASK),
    ).fetchall()
    return [_span_dict(span) for span in rows]


def _spans_of_page(
    conn: sqlite3.Connection, trace_keys: list[int], columns: str, where: str = ""
) -> dict[int, list[tuple[Any, ...]]]:
    """The span rows (``columns``) of several traces in one query, by trace key, each
    trace's in start order."""
    out: dict[int, list[tuple[Any, ...]]] = {key: [] for key in trace_keys}
    rows = conn.execute(
        f"SELECT s.span_key >> {SEQ_BITS}, {columns} FROM json_each(?) j "
        f"JOIN spans s ON s.span_key BETWEEN (j.value << {SEQ_BITS}) "
        f"AND ((j.value << {SEQ_BITS}) | {SEQ_MASK}){where} "
        "ORDER BY j.key, s.start_time, s.span_key",
        (json.dumps(trace_keys),),
    ).fetchall()
    for row in rows:
        out[row[0]].append(row[1:])
    return out


def get_trace(conn: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    trace_id = trace_id.strip().lower()
    if not trace_id:
        return None
    if len(trace_id) < 32:
        # A unique prefix (as printed by the console exporter and the CLI) is enough.
        matches = conn.execute(
            "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
            (trace_id, trace_id + "\uffff"),
        ).fetchall()
        if len(matches) != 1:
            return None
        trace_id = matches[0][0]
    rows = _rows(
        conn,
        f"SELECT t.trace_key, {_TRACE_COLUMNS} FROM traces t WHERE t.trace_id = ?",
        (trace_id,),
    )
    if not rows:
        return None
    trace = _trace_dict(rows[0])
    trace["spans"] = _spans_of(conn, trace.pop("trace_key"))
    return trace


def _trace_pages(
    conn: sqlite3.Connection, since: TimeArg, until: TimeArg, page: int, columns: str
) -> Iterator[list[tuple[Any, ...]]]:
    """Pages of trace rows (``trace_key, start_time, <columns>``), oldest first, keyset
    paging on (start time, trace key)."""
    clauses, params = _time_clause("t.start_time", since, until)
    bounds = "".join(f" AND {c}" for c in clauses)
    after: tuple[int, int] | None = None
    while True:
        keyset = "" if after is None else " AND (t.start_time, t.trace_key) > (?, ?)"
        rows = conn.execute(
            f"SELECT t.trace_key, t.start_time, {columns} FROM traces t WHERE 1{bounds}{keyset} "
            "ORDER BY t.start_time, t.trace_key LIMIT ?",
            [*params, *(after or ()), int(page)],
        ).fetchall()
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = (rows[-1][1], rows[-1][0])


_TRACE_NAMES = tuple(c.strip().removeprefix("t.") for c in _TRACE_COLUMNS.split(","))


def iter_traces(
    conn: sqlite3.Connection,
    since: TimeArg = None,
    until: TimeArg = None,
    *,
    page: int = 500,
) -> Iterator[dict[str, Any]]:
    """Every trace of the window with its spans (:func:`get_trace`'s shape), oldest first.

    Keyset paging on (start time, trace key), one query for a page's spans: each page
    costs the same wherever it is, so exporting n traces takes time linear in n
    (LIMIT/OFFSET paging took n²). Traces written while iterating may or may not be
    included; none is yielded twice.
    """
    for rows in _trace_pages(conn, since, until, page, _TRACE_COLUMNS):
        spans = _spans_of_page(conn, [r[0] for r in rows], _SPAN_COLUMNS)
        for row in rows:
            trace = dict(zip(_TRACE_NAMES, row[2:], strict=True))
            trace["attributes"] = _json_object(trace["attributes"])
            trace["total_tokens"] = trace["input_tokens"] + trace["output_tokens"]
            trace["models"] = sorted(_json_or(trace["models"], []))
            trace["agents"] = sorted(_json_or(trace["agents"], []))
            trace["spans"] = [_span_dict(values) for values in spans[row[0]]]
            yield trace


# Export lines are built by SQLite (json_object, in C) from the rows: REAL values with 17
# significant digits (they read back as the same double; json_object alone writes 15),
# stored attributes and events as the JSON they are.
def _json_fields(fields: list[tuple[str, str, str]]) -> str:
    parts = []
    for name, kind, column in fields:
        if kind == "str0":  # None written as "" (SpanRecord.model_name)
            value = f"COALESCE({column}, '')"
        elif kind == "real":
            value = f"CASE WHEN {column} IS NOT NULL THEN json(printf('%!.17g', {column})) END"
        elif kind == "bool":
            value = f"json(CASE WHEN {column} THEN 'true' ELSE 'false' END)"
        elif kind == "json":  # text strict JSON rejects (a schema-1 NaN) goes out as a string
            value = f"CASE WHEN json_valid({column}) THEN json({column}) ELSE {column} END"
        else:
            value = column
        parts.append(f"'{name}', {value}")
    return f"json_object({', '.join(parts)})"


_EXPORT_SPAN_JSON = _json_fields(
    [
        ("span_id", "str", "s.span_id"),
        ("parent_id", "str", "s.parent_id"),
        ("trace_id", "str", "s.trace_id"),
        ("name", "str", "s.name"),
        ("kind", "str", "s.kind"),
        ("duration_ms", "real", "s.duration_ms"),
        ("status", "str", "s.status"),
        ("attributes", "json", "s.attributes"),
        ("model_name", "str0", "s.model_name"),
        ("input_tokens", "int", "s.input_tokens"),
        ("output_tokens", "int", "s.output_tokens"),
        ("cost_usd", "real", "s.cost_usd"),
        ("provider", "str", "s.provider"),
        ("cache_read_tokens", "int", "s.cache_read_tokens"),
        ("cache_write_tokens", "int", "s.cache_write_tokens"),
        ("reasoning_tokens", "int", "s.reasoning_tokens"),
        ("start_time", "int", "s.start_time"),
        ("end_time", "int", "s.end_time"),
        ("events", "json", "s.events"),
        ("llm_call", "bool", "s.llm_call"),
        ("cost_status", "str", "s.cost_status"),
        ("agent", "str", "s.agent_name"),
        ("user_id", "str", "t.user_id"),
        ("session_id", "str", "t.session_id"),
    ]
)
_EXPORT_TRACE_JSON = _json_fields(
    [
        ("trace_id", "str", "t.trace_id"),
        ("name", "str", "t.name"),
        ("total_duration_ms", "real", "t.duration_ms"),
        ("total_cost_usd", "real", "t.cost_usd"),
        ("total_tokens", "int", "(t.input_tokens + t.output_tokens)"),
        ("span_count", "int", "t.span_count"),
        ("status", "str", "t.status"),
        ("start_time", "int", "t.start_time"),
        ("end_time", "int", "t.end_time"),
        ("user_id", "str", "t.user_id"),
        ("session_id", "str", "t.session_id"),
        ("service_name", "str", "t.service_name"),
        ("llm_calls", "int", "t.llm_calls"),
        ("unpriced_llm_calls", "int", "t.unpriced_llm_calls"),
        ("no_usage_llm_calls", "int", "t.no_usage_llm_calls"),
        ("estimated_llm_calls", "int", "t.estimated_llm_calls"),
        ("cost_complete", "bool", "(t.unpriced_llm_calls + t.no_usage_llm_calls = 0)"),
        ("input_tokens", "int", "t.input_tokens"),
        ("output_tokens", "int", "t.output_tokens"),
        ("cache_read_tokens", "int", "t.cache_read_tokens"),
        ("cache_write_tokens", "int", "t.cache_write_tokens"),
        ("reasoning_tokens", "int", "t.reasoning_tokens"),
        ("attributes", "json", "t.attributes"),
    ]
)


def iter_export_lines(
    conn: sqlite3.Connection,
    since: TimeArg = None,
    until: TimeArg = None,
    *,
    page: int = 500,
) -> Iterator[str]:
    """Every trace of the window as one line of JSON, oldest first: the object the JSONL
    exporter writes for a trace (``TraceRecord.to_dict()``), built from the stored rows.

    SQLite writes the JSON (attributes and events go out as the text stored: no parse and
    write again), so an export costs little more than reading. A span's ``user_id`` and
    ``session_id`` are its trace's (the store keeps them per trace).
    """
    for rows in _trace_pages(conn, since, until, page, _EXPORT_TRACE_JSON):
        spans: dict[int, list[str]] = {r[0]: [] for r in rows}
        for trace_key, text in conn.execute(
            f"SELECT t.trace_key, {_EXPORT_SPAN_JSON} FROM json_each(?) j "
            "JOIN traces t ON t.trace_key = j.value "
            f"JOIN spans s ON s.span_key BETWEEN (j.value << {SEQ_BITS}) "
            f"AND ((j.value << {SEQ_BITS}) | {SEQ_MASK}) ORDER BY j.key, s.start_time, s.span_key",
            (json.dumps(list(spans)),),
        ):
            spans[trace_key].append(text)
        for trace_key, _, head in rows:
            yield f'{head[:-1]},"spans":[{",".join(spans[trace_key])}]}}'


# -- aggregates from the rollups ---------------------------------------------------------


def _latency(merged: Merged | None) -> dict[str, float | None]:
    if merged is None or merged.int("runs") <= 0:
        return dict.fromkeys(_LATENCY_FIELDS, None)
    runs = merged.int("runs")
    return {
        "latency_avg_ms": merged.sums["run_sum"] / runs,
        "latency_max_ms": merged.max,
        "latency_p50_ms": merged.quantile(0.50),
        "latency_p95_ms": merged.quantile(0.95),
        "latency_p99_ms": merged.quantile(0.99),
    }


def _usage(merged: Merged) -> dict[str, Any]:
    out: dict[str, Any] = {
        "llm_calls": merged.int("calls"),
        "unpriced_llm_calls": merged.int("unpriced"),
        "no_usage_llm_calls": merged.int("no_usage"),
        "estimated_llm_calls": merged.int("estimated"),
        "cost_usd": max(0.0, merged.sums["cost_usd"]),
        **{field: merged.int(field) for field in _TOKEN_FIELDS},
    }
    out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    return out


def _group_row(key: Any, merged: Merged, runs_field: str = "runs") -> dict[str, Any]:
    runs = merged.int(runs_field)
    errors = merged.int("errors")
    return {
        "key": key,
        **_usage(merged),
        "traces": merged.int("traces"),
        "runs": runs,
        "errors": errors,
        "error_rate": errors / runs if runs else 0.0,
        **_latency(merged),
    }


_BY_DIMS = {
    "model": (DIM_MODEL,),
    "agent": (DIM_AGENT,),
    "user": (DIM_USER_DAY, DIM_USER),
    "day": (DIM_ALL,),
}


def aggregate(
    conn: sqlite3.Connection, by: str, since: TimeArg = None, until: TimeArg = None
) -> list[dict[str, Any]]:
    """Totals and latency percentiles per model, agent, user or UTC day (see
    ``SQLiteStore.aggregate``), from the rollups."""
    dims = _BY_DIMS.get(by)
    if dims is None:
        raise ValueError(f"by must be one of {list(AGGREGATE_KEYS)}, got {by!r}")
    lo, hi = to_epoch_ns(since), to_epoch_ns(until)
    if by == "day":
        groups = gather(conn, dims, lo, hi, by_bucket=WIDTH_S[DIM_ALL] * 24)
        days = [
            _group_row(datetime.fromtimestamp(bucket, tz=timezone.utc).strftime("%Y-%m-%d"), m)
            for bucket, m in sorted(groups.items())
        ]
        return [d for d in days if d["runs"] or d["llm_calls"]]
    rows = [
        _group_row(key or None, merged)
        for key, merged in gather(conn, dims, lo, hi).items()
        if merged.int("calls") or merged.int("runs") or merged.int("traces")
    ]
    rows.sort(key=lambda g: (-g["cost_usd"], -g["runs"], str(g["key"])))
    return rows


def _count_status(conn: sqlite3.Connection, lo: int | None, hi: int | None) -> dict[str, int]:
    clauses, params = _time_clause("start_time", lo, hi)
    where = "".join(f" AND {c}" for c in clauses)
    counts = dict.fromkeys(("running", "incomplete"), 0)
    for status in counts:
        counts[status] = conn.execute(
            f"SELECT COUNT(*) FROM traces WHERE status = ?{where}", [status, *params]
        ).fetchone()[0]
    return counts


def _distinct(
    conn: sqlite3.Connection,
    day_dim: int,
    hour_dim: int | None,
    column: str,
    lo: int | None,
    hi: int | None,
) -> int:
    """How many distinct users (or sessions) the window's traces have."""
    widths = [WIDTH_S[day_dim]] + ([WIDTH_S[hour_dim]] if hour_dim is not None else [])
    dims = [day_dim] + ([hour_dim] if hour_dim is not None else [])
    parts, raw = cover(lo, hi, widths)
    selects, params = [], []
    for level, first, end in parts:
        clause = "".join(
            f" AND bucket {op} ?" for op, v in ((">=", first), ("<", end)) if v is not None
        )
        selects.append(f"SELECT key AS k FROM rollups WHERE dim = ? AND key != ''{clause}")
        params.extend([dims[level], *(v for v in (first, end) if v is not None)])
    for low, high in raw:
        selects.append(
            f"SELECT {column} AS k FROM traces WHERE start_time >= ? AND start_time < ? "
            f"AND {column} IS NOT NULL AND folded >= 0"
        )
        params.extend([low, high])
    if not selects:
        return 0
    sql = f"SELECT COUNT(DISTINCT k) FROM ({' UNION ALL '.join(selects)})"
    return int(conn.execute(sql, params).fetchone()[0])


def _first_last(
    conn: sqlite3.Connection, where: str, params: list[Any]
) -> tuple[int | None, int | None]:
    """First and last trace start in a window: two index probes (MIN and MAX in one SELECT
    would scan the window)."""
    first = conn.execute(f"SELECT MIN(start_time) FROM traces{where}", params).fetchone()[0]
    last = conn.execute(f"SELECT MAX(start_time) FROM traces{where}", params).fetchone()[0]
    return first, last


def _sessions(conn: sqlite3.Connection, lo: int | None, hi: int | None) -> int:
    """Distinct sessions of the window's traces: HyperLogLog over whole hours (within
    1.6 %, exact in practice below a few hundred), exact ids at the ends."""
    parts, raw = cover(lo, hi, [WIDTH_S[DIM_ALL]])
    blobs: list[bytes | None] = []
    for _, first, end in parts:
        clause = "".join(
            f" AND bucket {op} ?" for op, v in ((">=", first), ("<", end)) if v is not None
        )
        blobs.extend(
            r[0]
            for r in conn.execute(
                f"SELECT sessions_hll FROM rollups WHERE dim = ?{clause} "
                "AND sessions_hll IS NOT NULL",
                [DIM_ALL, *(v for v in (first, end) if v is not None)],
            )
        )
    ids: list[str] = []
    for low, high in raw:
        ids.extend(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT session_id FROM traces WHERE start_time >= ? AND start_time < ? "
                "AND session_id IS NOT NULL AND folded >= 0",
                (low, high),
            )
        )
    return hll.estimate(hll.union(blobs, ids))


def summary(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None
) -> dict[str, Any]:
    """Headline numbers over the window (see ``SQLiteStore.summary``), from the rollups."""
    lo, hi = to_epoch_ns(since), to_epoch_ns(until)
    merged = gather(conn, (DIM_ALL,), lo, hi).get("") or Merged()
    open_counts = _count_status(conn, lo, hi)
    clauses, params = _time_clause("start_time", lo, hi)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    first, last = _first_last(conn, where, params)
    finished = merged.int("traces")
    errors = merged.int("errors")
    result: dict[str, Any] = {
        "trace_count": finished + open_counts["running"] + open_counts["incomplete"],
        "finished_traces": finished,
        "running_traces": open_counts["running"],
        "incomplete_traces": open_counts["incomplete"],
        "span_count": merged.int("spans"),
        "error_count": errors,
        "error_rate": errors / finished if finished else 0.0,
        **_usage(merged),
        "total_cost_usd": max(0.0, merged.sums["cost_usd"]),
        "users": _distinct(conn, DIM_USER_DAY, DIM_USER, "user_id", lo, hi),
        "sessions": _sessions(conn, lo, hi),
        "first_start_time": first,
        "last_start_time": last,
        **_latency(merged),
    }
    del result["cost_usd"]
    return result


def timeseries(
    conn: sqlite3.Connection,
    buckets: int = 30,
    since: TimeArg = None,
    until: TimeArg = None,
) -> dict[str, Any]:
    """Finished traces, failed traces, cost and tokens per equal time bucket.

    The open ends of the window are the first and last trace. Each minute of the
    per-minute rollup counts in the bucket its start falls in; for buckets of six hours or
    more, each whole hour of the window does (from the hourly rows). Returns ``bucket_ns`` and
    ``points`` (``start_time`` epoch ns, ``traces``, ``errors``, ``cost_usd``, ``tokens``).
    """
    buckets = max(1, int(buckets))
    lo, hi = to_epoch_ns(since), to_epoch_ns(until)
    if lo is None or hi is None:
        first, last = _first_last(conn, "", [])
        if first is None or last is None:
            return {"bucket_ns": None, "points": []}
        lo = first if lo is None else lo
        hi = last + 1 if hi is None else hi
    width = max(1, -(-(hi - lo) // buckets))  # ceil: the last trace is in the last bucket
    # The minutes of the window; buckets of six hours or more read its whole hours from the
    # hourly rows instead (the minutes only at its ends).
    first_minute = lo // _NS - (lo // _NS) % 60
    end = -(-hi // _NS)
    spans: list[tuple[int, int, int]] = [(DIM_MINUTE, first_minute, end)]
    if width >= 6 * 3600 * _NS:
        hour_lo = -(-first_minute // 3600) * 3600
        hour_hi = end // 3600 * 3600
        if hour_lo < hour_hi:
            spans = [
                (DIM_MINUTE, first_minute, hour_lo),
                (DIM_ALL, hour_lo, hour_hi),
                (DIM_MINUTE, hour_hi, end),
            ]
    by_bucket: dict[int, list[float]] = {}
    for dim, first_row, end_row in spans:
        for b, *sums in conn.execute(
            # The minute the window starts in (it starts before lo) counts in bucket 0.
            "SELECT MAX(0, (bucket * 1000000000 - ?) / ?) AS b, TOTAL(traces), TOTAL(errors), "
            "TOTAL(cost_usd), TOTAL(input_tokens + output_tokens) FROM rollups "
            "WHERE dim = ? AND bucket >= ? AND bucket < ? GROUP BY b",
            (lo, width, dim, first_row, end_row),
        ):
            into = by_bucket.setdefault(int(b), [int(b), 0.0, 0.0, 0.0, 0.0])
            for i, value in enumerate(sums, start=1):
                into[i] += value
    points = []
    for index in range(buckets):
        row = by_bucket.get(index)
        points.append(
            {
                "start_time": lo + index * width,
                "traces": int(row[1]) if row else 0,
                "errors": int(row[2]) if row else 0,
                "cost_usd": max(0.0, float(row[3])) if row else 0.0,
                "tokens": int(row[4]) if row else 0,
            }
        )
    return {"bucket_ns": width, "points": points}


def _distribution(merged: Merged, *, own: bool) -> dict[str, float | None]:
    runs = merged.int("runs")
    total = merged.sums["self_sum" if own else "run_sum"]
    quantile = merged.self_quantile if own else merged.quantile
    return {
        "p50": quantile(0.50),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "avg": total / runs if runs else None,
        "total": total,
    }


def stages(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None
) -> list[dict[str, Any]]:
    """Latency by stage (span kind): inclusive (the span's duration) and self time (minus
    the union of its children's intervals). Each row: ``stage``, ``count``, ``errors``,
    ``inclusive`` and ``self`` (``p50``, ``p95``, ``p99``, ``avg``, ``total`` in ms).
    Sorted by total self time."""
    groups = gather(conn, (DIM_KIND,), to_epoch_ns(since), to_epoch_ns(until))
    rows = [
        {
            "stage": kind,
            "count": merged.int("runs"),
            "errors": merged.int("errors"),
            "inclusive": _distribution(merged, own=False),
            "self": _distribution(merged, own=True),
        }
        for kind, merged in groups.items()
        if merged.int("runs") > 0
    ]
    rows.sort(key=lambda r: (-r["self"]["total"], r["stage"]))
    return rows


def filter_options(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None, limit: int = 500
) -> dict[str, list[str]]:
    """Models, agents and users seen in the window (for filter menus), sorted. The window
    is widened to whole hours (users: whole days)."""
    lo, hi = to_epoch_ns(since), to_epoch_ns(until)
    out: dict[str, list[str]] = {}
    for name, dim in (("models", DIM_MODEL), ("agents", DIM_AGENT), ("users", DIM_USER_DAY)):
        clauses, params = ["dim = ?", "key != ''"], [dim]
        if lo is not None:
            clauses.append("bucket >= ?")
            params.append(lo // _NS - (lo // _NS) % WIDTH_S[dim])
        if hi is not None:
            clauses.append("bucket < ?")
            params.append(-(-hi // _NS))
        if name == "agents":
            clauses.append("runs > 0")  # agents that ran, not the agent of a call only
        rows = conn.execute(
            f"SELECT DISTINCT key FROM rollups WHERE {' AND '.join(clauses)} ORDER BY key LIMIT ?",
            [*params, int(limit)],
        ).fetchall()
        out[name] = [r[0] for r in rows]
    return out


def change_marker(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the pages poll: ``version`` changes whenever anything was written (a batch of
    spans of a running trace too); also ``trace_count`` (every status) and
    ``last_start_time`` (epoch ns). Costs a few index lookups at any size."""
    writes = conn.execute("SELECT value FROM store_meta WHERE name = 'writes'").fetchone()
    newest = (
        conn.execute("SELECT MAX(trace_key) FROM traces").fetchone()[0],
        _first_last(conn, "", [])[1],
    )
    finished = conn.execute(
        "SELECT TOTAL(traces) FROM rollups WHERE dim = ?", (DIM_ALL,)
    ).fetchone()[0]
    open_counts = _count_status(conn, None, None)
    count = int(finished) + open_counts["running"] + open_counts["incomplete"]
    return {
        "version": f"{writes[0] if writes else 0}:{newest[0] or 0}:{count}",
        "trace_count": count,
        "running_traces": open_counts["running"],
        "last_start_time": newest[1],
    }


# -- usage rows (re-pricing) ---------------------------------------------------------------

_USAGE_COLUMNS = (
    "s.trace_id, s.span_id, s.start_time, s.model_name, s.provider, s.input_tokens, "
    "s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens, "
    "s.cost_usd, s.cost_status, s.agent_name, t.user_id, t.session_id"
)
_USAGE_SELECT = f"SELECT {_USAGE_COLUMNS}"


def iter_usage_rows(
    conn: sqlite3.Connection,
    since: TimeArg = None,
    until: TimeArg = None,
    *,
    min_input_tokens: int | None = None,
    page: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Every counted LLM call of the window's traces (``usage_rows``' shape), streamed in
    trace order with keyset paging: memory is one page whatever the window.

    ``min_input_tokens`` >= :data:`LONG_INPUT_TOKENS`: only calls with more input tokens
    than that, read through a partial index (the few calls a tiered price reprices
    differently; the rest can be re-priced from :func:`aggregate`'s token sums).
    """
    if min_input_tokens is not None and min_input_tokens >= LONG_INPUT_TOKENS:
        clauses, params = _time_clause("t.start_time", since, until)
        bounds = "".join(f" AND {c}" for c in clauses)
        yield from _long_usage_rows(conn, bounds, params, int(min_input_tokens), page)
        return
    names = tuple(c.strip().split(".")[-1] for c in _USAGE_COLUMNS.split(","))[:-2]
    span_columns = _USAGE_COLUMNS.replace(", t.user_id, t.session_id", "")
    for rows in _trace_pages(conn, since, until, page, "t.user_id, t.session_id"):
        people = {r[0]: (r[2], r[3]) for r in rows}
        spans = _spans_of_page(conn, list(people), span_columns, " AND s.counts_usage = 1")
        for trace_key, calls in spans.items():
            user, session = people[trace_key]
            for values in calls:
                row = dict(zip(names, values, strict=True))
                row["user_id"] = user
                row["session_id"] = session
                yield row


def _long_usage_rows(
    conn: sqlite3.Connection, bounds: str, params: list[Any], above: int, page: int
) -> Iterator[dict[str, Any]]:
    # Through the partial index of long-input calls only (spans_long_input), in key order.
    after = -1
    while True:
        rows = _rows(
            conn,
            f"{_USAGE_SELECT}, s.span_key FROM spans s INDEXED BY spans_long_input "
            f"JOIN traces t ON t.trace_key = s.span_key >> {SEQ_BITS} "
            f"WHERE s.llm_call = 1 AND s.input_tokens > {LONG_INPUT_TOKENS} "
            f"AND s.input_tokens > ? AND s.counts_usage = 1 AND s.span_key > ?{bounds} "
            "ORDER BY s.span_key LIMIT ?",
            [above, after, *params, page],
        )
        for row in rows:
            data = dict(row)
            after = data.pop("span_key")
            yield data
        if len(rows) < page:
            return


def usage_rows(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None
) -> list[dict[str, Any]]:
    """Every counted call of the window, in a list (prefer :func:`iter_usage_rows`)."""
    rows = list(iter_usage_rows(conn, since, until))
    rows.sort(key=lambda r: r["start_time"])
    return rows


def raw_window_fold(conn: sqlite3.Connection, since: TimeArg, until: TimeArg) -> Any:
    """The rollup fold of a window computed from its rows only (tests compare it with what
    the rollups answer)."""
    lo, hi = to_epoch_ns(since), to_epoch_ns(until)
    return raw_fold(conn, [(lo if lo is not None else -(2**62), hi if hi is not None else 2**62)])
