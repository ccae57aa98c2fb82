"""Read access to the span store for the CLI and the dashboard.

:class:`StoreReader` opens the store read-only and answers in the shapes the JSON API
documents (times in epoch **milliseconds**, which JavaScript holds exactly; the store keeps
epoch nanoseconds). Most answers come from :class:`~agentos_obs.store.SQLiteStore`'s query
API. Three the store does not offer are computed here with read-only SQL over its schema
(``_store_schema.py``): the change marker the pages poll, time buckets, and latency by stage
with self time (which needs each span's children, so it is computed in Python over the
newest ``STAGE_SPAN_LIMIT`` spans of the window).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentos_obs.cli._common import CLIError
from agentos_obs.cost._analytics import _window as budget_window
from agentos_obs.dashboard import _union_ms
from agentos_obs.errors import ConfigurationError
from agentos_obs.store._queries import FAILED_STATUSES, to_epoch_ns

__all__ = [
    "STAGE_SPAN_LIMIT",
    "Budget",
    "StoreReader",
    "api_span",
    "api_trace",
    "parse_budget",
    "resolve_db_path",
]

STAGE_SPAN_LIMIT = 200_000
_NS_PER_MS = 1_000_000
_FAILED_SQL = "(" + ", ".join(f"'{s}'" for s in FAILED_STATUSES) + ")"


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """``--db`` if given, else the store's default (``$AGENTOS_OBS_DB`` / per-user dir)."""
    from agentos_obs.store._writer import default_db_path

    return Path(db).expanduser() if db else default_db_path()


# -- budgets ---------------------------------------------------------------------------------
_PERIODS = {
    "hour": "hourly", "hourly": "hourly", "h": "hourly",
    "day": "daily", "daily": "daily", "d": "daily",
    "week": "weekly", "weekly": "weekly", "w": "weekly",
    "month": "monthly", "monthly": "monthly", "mo": "monthly",
    "total": None, "all": None,
}  # fmt: skip
_BUDGET = re.compile(r"^\s*\$?(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*$", re.I)


@dataclass(frozen=True)
class Budget:
    """A spend limit shown on the dashboard: ``limit_usd`` per calendar ``period`` (UTC)."""

    limit_usd: float
    period: str | None  # hourly daily weekly monthly, None = all time

    @property
    def name(self) -> str:
        return f"${self.limit_usd:g} " + (self.period or "all time")


def parse_budget(spec: str) -> Budget:
    """``10/day``, ``$200/month``, ``50`` (all time) -> :class:`Budget` (ValueError if bad)."""
    match = _BUDGET.match(spec)
    period_word = (match.group(2) or "total").lower() if match else ""
    if not match or period_word not in _PERIODS or float(match.group(1)) <= 0:
        raise ValueError(
            f"invalid budget {spec!r}: use USD[/PERIOD] with PERIOD one of hour, day, week, "
            "month, total (e.g. 10/day)"
        )
    return Budget(float(match.group(1)), _PERIODS[period_word])


# -- API shapes ------------------------------------------------------------------------------
def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / _NS_PER_MS


def api_trace(row: dict[str, Any]) -> dict[str, Any]:
    """A store trace row in the API's shape (without spans)."""
    return {
        "trace_id": row["trace_id"],
        "name": row.get("name") or "",
        "service_name": row.get("service_name"),
        "status": row.get("status") or "ok",
        "start_ms": _ms(row.get("start_time")),
        "end_ms": _ms(row.get("end_time")),
        "duration_ms": row.get("duration_ms") or 0.0,
        "span_count": row.get("span_count") or 0,
        "error_count": row.get("error_count") or 0,
        "llm_calls": row.get("llm_calls") or 0,
        "unpriced_llm_calls": row.get("unpriced_llm_calls") or 0,
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "cache_read_tokens": row.get("cache_read_tokens") or 0,
        "cache_write_tokens": row.get("cache_write_tokens") or 0,
        "reasoning_tokens": row.get("reasoning_tokens") or 0,
        "total_tokens": row.get("total_tokens") or 0,
        "cost_usd": row.get("cost_usd") or 0.0,
        "user_id": row.get("user_id"),
        "session_id": row.get("session_id"),
        "models": row.get("models") or [],
        "agents": row.get("agents") or [],
        "attributes": row.get("attributes") or {},
    }


def api_span(row: dict[str, Any]) -> dict[str, Any]:
    start_ms = _ms(row.get("start_time")) or 0.0
    duration = row.get("duration_ms") or 0.0
    return {
        "span_id": row["span_id"],
        "parent_id": row.get("parent_id"),
        "name": row.get("name") or "",
        "kind": row.get("kind") or "chain",
        "status": row.get("status") or "ok",
        "start_ms": start_ms,
        "end_ms": _ms(row.get("end_time")) or start_ms + duration,
        "duration_ms": duration,
        "model_name": row.get("model_name") or None,
        "provider": row.get("provider"),
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "cache_read_tokens": row.get("cache_read_tokens") or 0,
        "cache_write_tokens": row.get("cache_write_tokens") or 0,
        "reasoning_tokens": row.get("reasoning_tokens") or 0,
        "cost_usd": row.get("cost_usd"),
        "counts_usage": bool(row.get("counts_usage")),
        "agent_name": row.get("agent_name"),
        "attributes": row.get("attributes") or {},
        "events": [
            {
                "name": e.get("name", ""),
                "time_ms": _ms(e.get("timestamp")),
                "attributes": e.get("attributes") or {},
            }
            for e in row.get("events") or []
            if isinstance(e, dict)
        ],
    }


def _nearest_rank(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile, the store's definition (an observed value)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n * q)
    return sorted_values[int(rank) - 1]


def _distribution(values: list[float]) -> dict[str, float | None]:
    values.sort()
    return {
        "p50": _nearest_rank(values, 0.50),
        "p95": _nearest_rank(values, 0.95),
        "p99": _nearest_rank(values, 0.99),
        "avg": sum(values) / len(values) if values else None,
        "total": sum(values),
    }


# -- the reader ------------------------------------------------------------------------------
class StoreReader:
    """Read-only queries for the CLI and the dashboard; CLIError when the store is unusable."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from agentos_obs.store._writer import SQLiteStore

        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise CLIError(
                f"no database at {self.path}: run `agentos-obs demo` first, or pass --db PATH"
            )
        try:
            self.store = SQLiteStore.open_readonly(self.path)
        except ConfigurationError as exc:
            raise CLIError(str(exc)) from None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def close(self) -> None:
        self.store.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Our own read-only connection, for the few queries the store's API lacks."""
        with self._lock:
            if self._conn is None:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._conn.row_factory = sqlite3.Row
            try:
                return self._conn.execute(sql, list(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise CLIError(f"cannot read {self.path}: {exc}") from None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.store, method)(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise CLIError(f"cannot read {self.path}: {exc}") from None

    @staticmethod
    def _window(since: datetime | None, until: datetime | None) -> tuple[str, list[int]]:
        clauses, params = [], []
        if since is not None:
            clauses.append("start_time >= ?")
            params.append(to_epoch_ns(since) or 0)
        if until is not None:
            clauses.append("start_time < ?")
            params.append(to_epoch_ns(until) or 0)
        return (" AND ".join(clauses) or "1"), params

    # -- queries ---------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        row = self._sql(
            "SELECT COUNT(*) AS n, MAX(start_time) AS last, MAX(rowid) AS r FROM traces"
        )[0]
        return {
            "version": f"{row['n']}:{row['r']}:{row['last']}",
            "trace_count": row["n"],
            "last_start_ms": _ms(row["last"]),
            "db_path": str(self.path),
        }

    def summary(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        raw = self._call("summary", since, until)
        return {
            "trace_count": raw["trace_count"],
            "span_count": raw["span_count"],
            "error_count": raw["error_count"],
            "error_rate": raw["error_rate"],
            "latency_ms": {
                "p50": raw["latency_p50_ms"],
                "p95": raw["latency_p95_ms"],
                "p99": raw["latency_p99_ms"],
                "avg": raw["latency_avg_ms"],
                "max": raw["latency_max_ms"],
            },
            "cost_usd": raw["total_cost_usd"],
            "input_tokens": raw["input_tokens"],
            "output_tokens": raw["output_tokens"],
            "cache_read_tokens": raw["cache_read_tokens"],
            "cache_write_tokens": raw["cache_write_tokens"],
            "reasoning_tokens": raw["reasoning_tokens"],
            "total_tokens": raw["total_tokens"],
            "llm_calls": raw["llm_calls"],
            "unpriced_llm_calls": raw["unpriced_llm_calls"],
            "users": raw["users"],
            "sessions": raw["sessions"],
            "first_start_ms": _ms(raw["first_start_time"]),
            "last_start_ms": _ms(raw["last_start_time"]),
        }

    def breakdown(
        self, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        rows = self._call("aggregate", by, since, until)
        return [
            {
                "key": row["key"],
                "calls": row["llm_calls"],
                "runs": row["runs"],
                "traces": row["traces"],
                "errors": row["errors"],
                "error_rate": row["error_rate"],
                "cost_usd": row["cost_usd"],
                "unpriced_llm_calls": row["unpriced_llm_calls"],
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "cache_read_tokens": row["cache_read_tokens"],
                "cache_write_tokens": row["cache_write_tokens"],
                "reasoning_tokens": row["reasoning_tokens"],
                "total_tokens": row["total_tokens"],
                "latency_p50_ms": row["latency_p50_ms"],
                "latency_p95_ms": row["latency_p95_ms"],
                "latency_p99_ms": row["latency_p99_ms"],
            }
            for row in rows
        ]

    def traces(
        self, *, limit: int = 50, offset: int = 0, **filters: Any
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of traces, newest first, and whether more follow."""
        rows = self._call("list_traces", limit=limit + 1, offset=offset, **filters)
        return [api_trace(r) for r in rows[:limit]], len(rows) > limit

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """``{"trace": ..., "spans": [...]}``; a unique id prefix is enough."""
        raw = self._call("get_trace", trace_id)
        if raw is None:
            return None
        return {"trace": api_trace(raw), "spans": [api_span(s) for s in raw.get("spans", [])]}

    def filter_options(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[str]]:
        where, params = self._window(since, until)
        queries = {
            "models": f"SELECT DISTINCT model_name AS v FROM spans WHERE model_name IS NOT NULL "
            f"AND model_name != '' AND {where} ORDER BY v LIMIT 500",
            "agents": f"SELECT DISTINCT agent_name AS v FROM spans WHERE agent_name IS NOT NULL "
            f"AND {where} ORDER BY v LIMIT 500",
            "users": f"SELECT DISTINCT user_id AS v FROM traces WHERE user_id IS NOT NULL "
            f"AND {where} ORDER BY v LIMIT 500",
        }
        return {key: [str(r["v"]) for r in self._sql(sql, params)] for key, sql in queries.items()}

    def timeseries(
        self, *, buckets: int = 30, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        """Traces, failed traces, cost and tokens per equal time bucket over the window
        (the window's open ends are the first and last trace)."""
        where, params = self._window(since, until)
        bounds = self._sql(
            f"SELECT MIN(start_time) AS lo, MAX(start_time) AS hi FROM traces WHERE {where}", params
        )[0]
        if bounds["lo"] is None:
            return {"bucket_ms": None, "points": []}
        lo = to_epoch_ns(since) if since is not None else bounds["lo"]
        hi = to_epoch_ns(until) if until is not None else bounds["hi"] + 1
        assert lo is not None and hi is not None
        width = max(1, -(-(hi - lo) // buckets))  # ceil, so the last trace is in the last bucket
        rows = self._sql(
            "SELECT (start_time - ?) / ? AS b, COUNT(*) AS traces, "
            f"SUM(status IN {_FAILED_SQL}) AS errors, TOTAL(cost_usd) AS cost, "
            f"TOTAL(input_tokens + output_tokens) AS tokens FROM traces WHERE {where} GROUP BY b",
            [lo, width, *params],
        )
        by_bucket = {int(r["b"]): r for r in rows}
        points = []
        for index in range(buckets):
            row = by_bucket.get(index)
            points.append(
                {
                    "start": (lo + index * width) / _NS_PER_MS,
                    "traces": int(row["traces"]) if row else 0,
                    "errors": int(row["errors"] or 0) if row else 0,
                    "cost_usd": float(row["cost"]) if row else 0.0,
                    "tokens": int(row["tokens"]) if row else 0,
                }
            )
        return {"bucket_ms": width / _NS_PER_MS, "points": points}

    def stages(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Latency by span kind: inclusive (the span's duration) and self time (minus the
        union of its children's intervals, clipped to the span). Sorted by total self time."""
        where, params = self._window(since, until)
        rows = self._sql(
            "SELECT trace_id, span_id, parent_id, kind, start_time, end_time, duration_ms "
            f"FROM spans WHERE trace_id IN (SELECT trace_id FROM traces WHERE {where}) "
            "ORDER BY start_time DESC LIMIT ?",
            [*params, STAGE_SPAN_LIMIT],
        )
        children: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for r in rows:
            if r["parent_id"] and r["end_time"] is not None:
                children[(r["trace_id"], r["parent_id"])].append((r["start_time"], r["end_time"]))
        inclusive: dict[str, list[float]] = defaultdict(list)
        own: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            kind = r["kind"]
            duration = float(r["duration_ms"] or 0.0)
            inclusive[kind].append(duration)
            start, end = r["start_time"], r["end_time"]
            clipped = [
                (max(start, lo), min(end, hi))
                for lo, hi in children.get((r["trace_id"], r["span_id"]), ())
                if end is not None and min(end, hi) > max(start, lo)
            ]
            busy = _union_ms(clipped) if clipped else 0.0
            own[kind].append(max(0.0, duration - busy))
        kinds = sorted(inclusive, key=lambda k: (-sum(own[k]), k))
        return [
            {
                "stage": kind,
                "count": len(inclusive[kind]),
                "inclusive": _distribution(inclusive[kind]),
                "self": _distribution(own[kind]),
            }
            for kind in kinds
        ]

    def budget_status(
        self, budgets: Sequence[Budget], now: float | None = None
    ) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        result = []
        for budget in budgets:
            start: datetime | None = None
            end: datetime | None = None
            if budget.period is not None:
                start, end = budget_window(budget.period, now)
            spent = float(self._call("summary", start, end)["total_cost_usd"])
            result.append(
                {
                    "name": budget.name,
                    "period": budget.period or "all time",
                    "limit_usd": budget.limit_usd,
                    "spent_usd": spent,
                    "fraction": spent / budget.limit_usd,
                    "window_start": start.isoformat() if start else None,
                    "window_end": end.isoformat() if end else None,
                    "status": "over" if spent >= budget.limit_usd else "ok",
                }
            )
        return result

    def usage_rows(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        return list(self._call("usage_rows", since, until))
