"""Cost, tokens, calls and latency per model, agent, user or UTC day — a page at a time.

Grouping, ordering and paging happen in SQLite, so a store with 100k users answers a page
of 50 without building 100k rows in Python: memory per request is bounded by the page.
Latency percentiles (nearest rank, an observed value) are computed for the page's keys
only. The totals over every group come with each page.

Counting follows the sealed record's rules: calls are the counted LLM calls (``llm_call``,
a failed call included), tokens and cost come from the calls whose usage counts
(``counts_usage``). Runs are the latency units: a call for ``model``, an agent span for
``agent``, a trace for ``user`` and ``day``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BREAKDOWN_KEYS", "Breakdown", "breakdown_page"]

BREAKDOWN_KEYS = ("model", "agent", "user", "day")
_FAILED = "('error', 'timeout')"
_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_DAY = "date(start_time / 1000000000, 'unixepoch')"
_KEYS_PER_QUERY = 500  # bound parameters per IN list (SQLite allows at least 999)


@dataclass(frozen=True)
class Breakdown:
    """One page of groups, the number of groups and their totals."""

    rows: list[dict[str, Any]]
    total_rows: int
    totals: dict[str, Any]


def _span_groups(
    key: str, run_filter: str, latency: str, span_columns: Collection[str]
) -> tuple[str, str]:
    """(per-group SQL, latency units SQL) over the spans table, time on span start."""
    status = "cost_status" in span_columns
    unpriced = "cost_status = 'unpriced'" if status else "counts_usage AND cost_usd IS NULL"
    no_usage = "cost_status = 'no_usage'" if status else "llm_call AND NOT counts_usage"
    estimated = "cost_status = 'estimated'" if status else "0"
    usage = ", ".join(f"TOTAL(CASE WHEN counts_usage THEN {c} END) AS {c}" for c in _TOKENS)
    groups = (
        f"SELECT {key} AS key, SUM(llm_call) AS calls, "
        f"SUM(llm_call AND {unpriced}) AS unpriced, SUM(llm_call AND {no_usage}) AS no_usage, "
        f"SUM(llm_call AND {estimated}) AS estimated, "
        f"TOTAL(CASE WHEN counts_usage THEN cost_usd END) AS cost_usd, {usage}, "
        f"COUNT(DISTINCT trace_id) AS traces, SUM({run_filter}) AS runs, "
        f"SUM(({run_filter}) AND status IN {_FAILED}) AS errors "
        f"FROM spans WHERE (llm_call = 1 OR {run_filter}){{time}} GROUP BY {key}"
    )
    units = f"SELECT {key} AS key, {latency} AS v FROM spans WHERE {run_filter}{{time}}"
    return groups, units


def _trace_groups(key: str, trace_columns: Collection[str]) -> tuple[str, str]:
    """(per-group SQL, latency units SQL) over the traces table (sums kept per trace)."""
    no_usage = "no_usage_llm_calls" if "no_usage_llm_calls" in trace_columns else "0"
    estimated = "estimated_llm_calls" if "estimated_llm_calls" in trace_columns else "0"
    usage = ", ".join(f"TOTAL({c}) AS {c}" for c in _TOKENS)
    groups = (
        f"SELECT {key} AS key, TOTAL(llm_calls) AS calls, TOTAL(unpriced_llm_calls) AS unpriced, "
        f"TOTAL({no_usage}) AS no_usage, TOTAL({estimated}) AS estimated, "
        f"TOTAL(cost_usd) AS cost_usd, {usage}, COUNT(*) AS traces, COUNT(*) AS runs, "
        f"SUM(status IN {_FAILED}) AS errors FROM traces WHERE 1{{time}} GROUP BY {key}"
    )
    units = f"SELECT {key} AS key, duration_ms AS v FROM traces WHERE 1{{time}}"
    return groups, units


def _queries(
    by: str, span_columns: Collection[str], trace_columns: Collection[str]
) -> tuple[str, str]:
    if by == "model":
        return _span_groups("model_name", "llm_call = 1", "latency_ms", span_columns)
    if by == "agent":
        return _span_groups("agent_name", "kind = 'agent'", "duration_ms", span_columns)
    if by == "user":
        return _trace_groups("user_id", trace_columns)
    if by == "day":
        return _trace_groups(_DAY, trace_columns)
    raise ValueError(f"by must be one of {', '.join(BREAKDOWN_KEYS)}, got {by!r}")


_PERCENTILES = """
WITH units AS (SELECT key, v FROM ({units}) WHERE {keys}),
ranked AS (
    SELECT key, v, ROW_NUMBER() OVER (PARTITION BY key ORDER BY v) AS rn,
           COUNT(*) OVER (PARTITION BY key) AS n
    FROM units
)
SELECT key,
       MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN v END) AS p50,
       MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN v END) AS p95,
       MAX(CASE WHEN rn = (n * 99 + 99) / 100 THEN v END) AS p99
FROM ranked GROUP BY key
"""


def _row(raw: sqlite3.Row) -> dict[str, Any]:
    runs = int(raw["runs"] or 0)
    errors = int(raw["errors"] or 0)
    row: dict[str, Any] = {
        "key": raw["key"],
        "calls": int(raw["calls"] or 0),
        "runs": runs,
        "traces": int(raw["traces"] or 0),
        "errors": errors,
        "error_rate": errors / runs if runs else 0.0,
        "cost_usd": float(raw["cost_usd"] or 0.0),
        "unpriced_llm_calls": int(raw["unpriced"] or 0),
        "no_usage_llm_calls": int(raw["no_usage"] or 0),
        "estimated_llm_calls": int(raw["estimated"] or 0),
        **{c: int(raw[c] or 0) for c in _TOKENS},
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "latency_p99_ms": None,
    }
    row["total_tokens"] = row["input_tokens"] + row["output_tokens"]
    return row


_TOTALLED = ("calls", "cost_usd", "unpriced", "no_usage", "estimated", *_TOKENS)


def _totals(raw: Mapping[str, Any]) -> dict[str, Any]:
    totals = {
        "calls": int(raw["calls"] or 0),
        "cost_usd": float(raw["cost_usd"] or 0.0),
        "unpriced_llm_calls": int(raw["unpriced"] or 0),
        "no_usage_llm_calls": int(raw["no_usage"] or 0),
        "estimated_llm_calls": int(raw["estimated"] or 0),
        **{c: int(raw[c] or 0) for c in _TOKENS},
    }
    totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
    return totals


def _put_percentiles(
    conn: sqlite3.Connection,
    units: str,
    params: Sequence[Any],
    rows: list[dict[str, Any]],
    every_group: bool,
) -> None:
    by_key = {row["key"]: row for row in rows}
    batches: list[list[Any]] = [[]]
    if not every_group:  # only the page's keys: the units of other groups are never ranked
        keys = list(by_key)
        batches = [keys[i : i + _KEYS_PER_QUERY] for i in range(0, len(keys), _KEYS_PER_QUERY)]
    for batch in batches:
        if every_group:
            keys_sql, key_params = "1", []
        else:
            present = [k for k in batch if k is not None]
            parts = [f"key IN ({', '.join('?' * len(present))})"] if present else []
            if None in batch:
                parts.append("key IS NULL")
            keys_sql, key_params = "(" + " OR ".join(parts) + ")", present
        sql = _PERCENTILES.format(units=units, keys=keys_sql)
        for raw in conn.execute(sql, [*params, *key_params]):
            row = by_key.get(raw["key"])
            if row is not None:
                row["latency_p50_ms"] = raw["p50"]
                row["latency_p95_ms"] = raw["p95"]
                row["latency_p99_ms"] = raw["p99"]


def breakdown_page(
    conn: sqlite3.Connection,
    by: str,
    *,
    window: tuple[str, list[int]],
    span_columns: Collection[str],
    trace_columns: Collection[str],
    limit: int | None = None,
    offset: int = 0,
    with_latency: bool = True,
) -> Breakdown:
    """Groups ``offset`` .. ``offset + limit`` (all when ``limit`` is None) by cost, then
    runs, then key (``day``: by date), with the number of groups and their totals.

    ``window`` is an SQL condition on ``start_time`` and its parameters. Without
    ``with_latency`` the percentiles stay None (one query less: ``/metrics`` needs none).
    """
    groups_sql, units_sql = _queries(by, span_columns, trace_columns)
    where, params = window
    time_sql = f" AND {where}"
    groups = groups_sql.format(time=time_sql)
    units = units_sql.format(time=time_sql)
    order = "key" if by == "day" else "cost_usd DESC, runs DESC, key"
    summed = ", ".join(f"TOTAL({c}) OVER () AS all_{c}" for c in _TOTALLED)
    # One grouping pass: the totals over every group ride along each row of the page.
    page = conn.execute(
        f"SELECT *, COUNT(*) OVER () AS all_rows, {summed} FROM ({groups}) "
        f"ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, -1 if limit is None else int(limit), int(offset)],
    ).fetchall()
    if page:
        first = page[0]
        total_rows = int(first["all_rows"])
        totals = _totals({c: first[f"all_{c}"] for c in _TOTALLED})
    else:  # past the last group (or none): the totals alone
        raw = conn.execute(
            f"SELECT COUNT(*) AS all_rows, "
            f"{', '.join(f'TOTAL({c}) AS {c}' for c in _TOTALLED)} FROM ({groups})",
            params,
        ).fetchone()
        total_rows = int(raw["all_rows"])
        totals = _totals({c: raw[c] for c in _TOTALLED})
    rows = [_row(raw) for raw in page]
    if rows and with_latency:
        every_group = offset == 0 and len(rows) == total_rows
        _put_percentiles(conn, units, params, rows, every_group)
    return Breakdown(rows=rows, total_rows=total_rows, totals=totals)
