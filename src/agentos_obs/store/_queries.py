"""Read side of the span store: the SQL behind ``SQLiteStore``'s query methods.

Every function takes an open ``sqlite3.Connection`` (autocommit mode) and returns plain
dicts. Aggregates and percentiles are computed by SQLite (window functions), so a query
over a month of traces never loads the rows into Python.

Percentiles are nearest-rank: the p-th percentile of n values is the value of rank
ceil(n * p / 100) in ascending order, an observed value.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from agentos_obs.tracing import SpanStatus

__all__ = [
    "AGGREGATE_KEYS",
    "FAILED_STATUSES",
    "ORDERABLE",
    "aggregate",
    "count_traces",
    "get_trace",
    "list_traces",
    "retention",
    "summary",
    "to_epoch_ns",
    "usage_rows",
]

TimeArg = datetime | timedelta | float | int | None

# Statuses that count as failures in error counts and rates; "cancelled" (an abandoned
# stream, a cancelled task) is not a failure of the app.
FAILED_STATUSES = ("error", "timeout")
_FAILED_SQL = "('error', 'timeout')"
_STATUS_VALUES = frozenset(status.value for status in SpanStatus)

AGGREGATE_KEYS = ("model", "agent", "user", "day")
ORDERABLE = {
    "start_time": "t.start_time",
    "duration_ms": "t.duration_ms",
    "cost_usd": "t.cost_usd",
    "total_tokens": "(t.input_tokens + t.output_tokens)",
}

_NS_THRESHOLD = 1e15  # a number this large is epoch nanoseconds, not seconds

_TRACE_COLUMNS = (
    "trace_id, name, service_name, start_time, end_time, duration_ms, status, root_span_id, "
    "root_kind, remote_parent_id, user_id, session_id, span_count, error_count, llm_calls, "
    "unpriced_llm_calls, no_usage_llm_calls, estimated_llm_calls, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, attributes"
)
_MODELS_SQL = (
    "(SELECT json_group_array(DISTINCT s.model_name) FROM spans s "
    "WHERE s.trace_id = t.trace_id AND s.model_name IS NOT NULL)"
)
_AGENTS_SQL = (
    "(SELECT json_group_array(DISTINCT s.agent_name) FROM spans s "
    "WHERE s.trace_id = t.trace_id AND s.kind = 'agent')"
)
_LATENCY_FIELDS = (
    "latency_avg_ms",
    "latency_max_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
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
    if model is not None:
        clauses.append("t.trace_id IN (SELECT trace_id FROM spans WHERE model_name = ?)")
        params.append(model)
    if agent is not None:
        clauses.append(
            "t.trace_id IN (SELECT trace_id FROM spans WHERE kind = 'agent' AND agent_name = ?)"
        )
        params.append(agent)
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
        clause = (
            f"(t.name {like} OR t.trace_id {like} OR t.user_id {like} OR t.session_id {like} "
            f"OR t.trace_id IN (SELECT trace_id FROM spans WHERE name {like} "
            f"OR model_name {like}))"
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
    if "models" in data:
        data["models"] = sorted(_json_or(data["models"], []))
    if "agents" in data:
        data["agents"] = sorted(_json_or(data["agents"], []))
    return data


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
    # Page first, then compute the per-trace model/agent lists for that page only.
    sql = (
        f"SELECT t.*, {_MODELS_SQL} AS models, {_AGENTS_SQL} AS agents FROM ("
        f"SELECT {_TRACE_COLUMNS} FROM traces t{where} "
        f"ORDER BY {column} {direction}, t.trace_id LIMIT ? OFFSET ?) t "
        f"ORDER BY {column} {direction}, t.trace_id"
    )
    rows = conn.execute(sql, [*params, max(0, int(limit)), max(0, int(offset))]).fetchall()
    return [_trace_dict(row) for row in rows]


def count_traces(conn: sqlite3.Connection, **filters: Any) -> int:
    where, params = _trace_where(**filters)
    row = conn.execute(f"SELECT COUNT(*) FROM traces t{where}", params).fetchone()
    return int(row[0])


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
    row = conn.execute(
        f"SELECT {_TRACE_COLUMNS}, {_MODELS_SQL} AS models, {_AGENTS_SQL} AS agents "
        "FROM traces t WHERE t.trace_id = ?",
        (trace_id,),
    ).fetchone()
    if row is None:
        return None
    trace = _trace_dict(row)
    spans = conn.execute(
        "SELECT span_id, parent_id, trace_id, name, kind, status, start_time, end_time, "
        "duration_ms, latency_ms, model_name, provider, input_tokens, output_tokens, "
        "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, counts_usage, "
        "llm_call, cost_status, agent_name, attributes, events "
        "FROM spans WHERE trace_id = ? ORDER BY start_time, rowid",
        (trace_id,),
    ).fetchall()
    trace["spans"] = [_span_dict(span) for span in spans]
    return trace


def _span_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["attributes"] = _json_or(data["attributes"], {})
    data["events"] = _json_or(data["events"], [])
    data["counts_usage"] = bool(data["counts_usage"])
    data["llm_call"] = bool(data["llm_call"])
    data["total_tokens"] = data["input_tokens"] + data["output_tokens"]
    return data


# -- aggregates --------------------------------------------------------------------------

_USAGE_SUMS = (
    "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
    "SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
    "SUM(reasoning_tokens) AS reasoning_tokens, COUNT(DISTINCT trace_id) AS traces"
)
# Over the calls (spans with llm_call = 1): every call counts, a failed one too; a call
# without usage has no tokens and no cost, so tokens and cost sum over the same rows.
_CALL_SUMS = (
    "COUNT(*) AS llm_calls, SUM(cost_status = 'unpriced') AS unpriced, "
    "SUM(cost_status = 'no_usage') AS no_usage, SUM(cost_status = 'estimated') AS estimated, "
    f"TOTAL(cost_usd) AS cost_usd, {_USAGE_SUMS}"
)
# Over trace rows (their counters summed at write time).
_TRACE_SUMS = (
    "SUM(llm_calls) AS llm_calls, SUM(unpriced_llm_calls) AS unpriced, "
    "SUM(no_usage_llm_calls) AS no_usage, SUM(estimated_llm_calls) AS estimated, "
    f"TOTAL(cost_usd) AS cost_usd, {_USAGE_SUMS}"
)
_DAY_SQL = "date(start_time / 1000000000, 'unixepoch')"

# by -> (usage sums SQL, latency units SQL). Usage of model/agent comes from the calls'
# rows; of user/day from the trace rows.
_AGGREGATES: dict[str, tuple[str, str]] = {
    "model": (
        f"SELECT model_name AS key, {_CALL_SUMS} FROM spans "
        "WHERE llm_call = 1{time} GROUP BY model_name",
        "SELECT model_name AS key, latency_ms AS v, "
        f"status IN {_FAILED_SQL} AS failed FROM spans WHERE llm_call = 1{{time}}",
    ),
    "agent": (
        f"SELECT agent_name AS key, {_CALL_SUMS} FROM spans "
        "WHERE llm_call = 1{time} GROUP BY agent_name",
        "SELECT agent_name AS key, duration_ms AS v, "
        f"status IN {_FAILED_SQL} AS failed FROM spans WHERE kind = 'agent'{{time}}",
    ),
    "user": (
        f"SELECT user_id AS key, {_TRACE_SUMS} FROM traces WHERE 1{{time}} GROUP BY user_id",
        f"SELECT user_id AS key, duration_ms AS v, status IN {_FAILED_SQL} AS failed "
        "FROM traces WHERE 1{time}",
    ),
    "day": (
        f"SELECT {_DAY_SQL} AS key, {_TRACE_SUMS} FROM traces WHERE 1{{time}} GROUP BY key",
        f"SELECT {_DAY_SQL} AS key, duration_ms AS v, status IN {_FAILED_SQL} AS failed "
        "FROM traces WHERE 1{time}",
    ),
}

_PERCENTILES_SQL = """
WITH units AS ({units}),
ranked AS (
    SELECT key, v, failed,
           ROW_NUMBER() OVER (PARTITION BY key ORDER BY v) AS rn,
           COUNT(*) OVER (PARTITION BY key) AS n
    FROM units
)
SELECT key, COUNT(*) AS runs, SUM(failed) AS errors, AVG(v) AS avg, MAX(v) AS max,
       MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN v END) AS p50,
       MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN v END) AS p95,
       MAX(CASE WHEN rn = (n * 99 + 99) / 100 THEN v END) AS p99
FROM ranked GROUP BY key
"""


def _empty_group(key: Any) -> dict[str, Any]:
    return {
        "key": key,
        "runs": 0,
        "errors": 0,
        "error_rate": 0.0,
        "llm_calls": 0,
        "unpriced_llm_calls": 0,
        "no_usage_llm_calls": 0,
        "estimated_llm_calls": 0,
        "traces": 0,
        "cost_usd": 0.0,
        **dict.fromkeys(_TOKEN_FIELDS, 0),
        "total_tokens": 0,
        "latency_avg_ms": None,
        "latency_max_ms": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "latency_p99_ms": None,
    }


def aggregate(
    conn: sqlite3.Connection, by: str, since: TimeArg = None, until: TimeArg = None
) -> list[dict[str, Any]]:
    if by not in _AGGREGATES:
        raise ValueError(f"by must be one of {list(AGGREGATE_KEYS)}, got {by!r}")
    usage_sql, units_sql = _AGGREGATES[by]
    clauses, params = _time_clause("start_time", since, until)
    time_sql = "".join(f" AND {c}" for c in clauses)
    groups: dict[Any, dict[str, Any]] = {}
    for row in conn.execute(usage_sql.format(time=time_sql), params):
        group = groups.setdefault(row["key"], _empty_group(row["key"]))
        group["llm_calls"] = int(row["llm_calls"] or 0)
        group["unpriced_llm_calls"] = int(row["unpriced"] or 0)
        group["no_usage_llm_calls"] = int(row["no_usage"] or 0)
        group["estimated_llm_calls"] = int(row["estimated"] or 0)
        group["cost_usd"] = float(row["cost_usd"] or 0.0)
        group["traces"] = int(row["traces"] or 0)
        for field in _TOKEN_FIELDS:
            group[field] = int(row[field] or 0)
        group["total_tokens"] = group["input_tokens"] + group["output_tokens"]
    units = units_sql.format(time=time_sql)
    for row in conn.execute(_PERCENTILES_SQL.format(units=units), params):
        group = groups.setdefault(row["key"], _empty_group(row["key"]))
        _put_latency(group, row)
    rows = list(groups.values())
    if by == "day":
        rows.sort(key=lambda g: g["key"] or "")
    else:
        rows.sort(key=lambda g: (-g["cost_usd"], -g["runs"], str(g["key"])))
    return rows


def _put_latency(group: dict[str, Any], row: sqlite3.Row) -> None:
    runs = int(row["runs"] or 0)
    group["runs"] = runs
    group["errors"] = int(row["errors"] or 0)
    group["error_rate"] = group["errors"] / runs if runs else 0.0
    group["latency_avg_ms"] = row["avg"]
    group["latency_max_ms"] = row["max"]
    group["latency_p50_ms"] = row["p50"]
    group["latency_p95_ms"] = row["p95"]
    group["latency_p99_ms"] = row["p99"]


def summary(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None
) -> dict[str, Any]:
    clauses, params = _time_clause("start_time", since, until)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    row = conn.execute(
        "SELECT COUNT(*) AS traces, TOTAL(span_count) AS spans, TOTAL(llm_calls) AS llm_calls, "
        "TOTAL(unpriced_llm_calls) AS unpriced, TOTAL(no_usage_llm_calls) AS no_usage, "
        "TOTAL(estimated_llm_calls) AS estimated, TOTAL(cost_usd) AS cost_usd, "
        "TOTAL(input_tokens) AS input_tokens, TOTAL(output_tokens) AS output_tokens, "
        "TOTAL(cache_read_tokens) AS cache_read_tokens, "
        "TOTAL(cache_write_tokens) AS cache_write_tokens, "
        "TOTAL(reasoning_tokens) AS reasoning_tokens, "
        "COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT session_id) AS sessions, "
        "MIN(start_time) AS first_start_time, MAX(start_time) AS last_start_time "
        f"FROM traces{where}",
        params,
    ).fetchone()
    result: dict[str, Any] = {
        "trace_count": int(row["traces"]),
        "span_count": int(row["spans"]),
        "llm_calls": int(row["llm_calls"]),
        "unpriced_llm_calls": int(row["unpriced"]),
        "no_usage_llm_calls": int(row["no_usage"]),
        "estimated_llm_calls": int(row["estimated"]),
        "total_cost_usd": float(row["cost_usd"]),
        **{field: int(row[field]) for field in _TOKEN_FIELDS},
        "users": int(row["users"]),
        "sessions": int(row["sessions"]),
        "first_start_time": row["first_start_time"],
        "last_start_time": row["last_start_time"],
    }
    result["total_tokens"] = result["input_tokens"] + result["output_tokens"]
    units = (
        f"SELECT 0 AS key, duration_ms AS v, status IN {_FAILED_SQL} AS failed FROM traces{where}"
    )
    group = _empty_group(None)
    latency = conn.execute(_PERCENTILES_SQL.format(units=units), params).fetchone()
    if latency is not None:
        _put_latency(group, latency)
    result["error_count"] = group["errors"]
    result["error_rate"] = group["error_rate"]
    for field in _LATENCY_FIELDS:
        result[field] = group[field]
    return result


def usage_rows(
    conn: sqlite3.Connection, since: TimeArg = None, until: TimeArg = None
) -> list[dict[str, Any]]:
    clauses, params = _time_clause("s.start_time", since, until)
    time_sql = "".join(f" AND {c}" for c in clauses)
    rows = conn.execute(
        "SELECT s.trace_id, s.span_id, s.start_time, s.model_name, s.provider, "
        "s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, "
        "s.reasoning_tokens, s.cost_usd, s.cost_status, s.agent_name, t.user_id, t.session_id "
        "FROM spans s LEFT JOIN traces t ON t.trace_id = s.trace_id "
        f"WHERE s.counts_usage = 1{time_sql} ORDER BY s.start_time, s.rowid",
        params,
    ).fetchall()
    return [dict(row) for row in rows]


# -- retention ---------------------------------------------------------------------------


def _delete_traces(conn: sqlite3.Connection, selector: str, params: Sequence[Any]) -> int:
    conn.execute(f"DELETE FROM spans WHERE trace_id IN ({selector})", params)
    cursor = conn.execute(f"DELETE FROM traces WHERE trace_id IN ({selector})", params)
    return max(0, cursor.rowcount)


def _used_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def retention(
    conn: sqlite3.Connection,
    max_age_days: float | None = None,
    max_bytes: int | None = None,
    *,
    now_ns: int | None = None,
) -> dict[str, int]:
    if max_age_days is not None and max_age_days < 0:
        raise ValueError(f"max_age_days must be >= 0, got {max_age_days!r}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
    deleted = 0
    if max_age_days is not None:
        now = time.time_ns() if now_ns is None else now_ns
        cutoff = now - int(max_age_days * 86_400 * 1e9)
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted += _delete_traces(
                conn, "SELECT trace_id FROM traces WHERE start_time < ?", (cutoff,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if max_bytes is not None:
        # Delete the oldest traces in proportion to the excess, a few rounds at most: pages
        # of the indexes empty out more slowly than the rows do.
        for _ in range(32):
            used = _used_bytes(conn)
            if used <= max_bytes:
                break
            total = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
            if total == 0:
                break
            share = (used - max_bytes) / used
            batch = max(1, math.ceil(total * share * 1.1))
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted += _delete_traces(
                    conn,
                    "SELECT trace_id FROM traces ORDER BY start_time LIMIT ?",
                    (batch,),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    if deleted:
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"deleted_traces": deleted, "size_bytes": _used_bytes(conn)}
