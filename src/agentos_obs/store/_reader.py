"""Read access to the span store for the CLI, the dashboard and export.

:class:`StoreReader` opens the store read-only. It answers in the JSON API's shapes
(:mod:`agentos_obs.store._shapes`) and reads stored traces back as the records every sink
reads (:meth:`StoreReader.trace_record`, :meth:`StoreReader.iter_trace_records`). Headline
totals and the trace list come from :class:`~agentos_obs.store.SQLiteStore`'s query API;
the rest is read-only SQL over its schema: the change marker the pages poll, spans a page
at a time, breakdowns a page at a time, time buckets, and latency by stage with self time
(computed in Python over the newest ``STAGE_SPAN_LIMIT`` spans of the window).

Every failure is a :class:`~agentos_obs.store.StoreError` (one line, for a person): the
store knows nothing of exit codes or HTTP statuses.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from agentos_obs.cost import budget_window
from agentos_obs.errors import ConfigurationError
from agentos_obs.store._breakdowns import BREAKDOWN_KEYS, Breakdown, breakdown_page
from agentos_obs.store._errors import InvalidQuery, StoreError, StoreNotFound
from agentos_obs.store._readback import json_column, span_records, trace_record
from agentos_obs.store._shapes import api_span, api_trace, distribution, ms
from agentos_obs.store._when import clamp_time
from agentos_obs.tracing import TraceRecord, union_ms

__all__ = [
    "MAX_SPAN_PAGE",
    "STAGE_SPAN_LIMIT",
    "StoreReader",
    "resolve_db_path",
]

STAGE_SPAN_LIMIT = 200_000
MAX_SPAN_PAGE = 10_000  # spans per answer of trace(): bounds one request's memory
_NS_PER_MS = 1_000_000
_FAILED_SQL = "('error', 'timeout')"
_FILTER_VALUES = 500  # values per filter menu
_LIST_VALUES = 50  # models / agents named in a trace's header
_TRACE_PAGE = 100  # traces per query of iter_trace_records


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """``--db`` if given, else the store's default (``$AGENTOS_OBS_DB`` / per-user dir)."""
    from agentos_obs.store._writer import default_db_path

    return Path(db).expanduser() if db else default_db_path()


def _cursor(text: str | None) -> int | None:
    """A span page cursor (what the last answer's ``next`` said): a position in the store."""
    if not text:
        return None
    value = int(text) if text.isdigit() and len(text) <= 19 else -1
    if not 0 <= value < 2**63:
        raise InvalidQuery(f"invalid span cursor {text[:40]!r}: pass the 'next' of the last answer")
    return value


class StoreReader:
    """Read-only queries on a span store; :class:`StoreError` when it cannot answer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from agentos_obs.store._writer import SQLiteStore

        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise StoreNotFound(f"no database at {self.path}", path=self.path)
        try:
            self.store = SQLiteStore.open_readonly(self.path)
        except ConfigurationError as exc:
            raise StoreError(str(exc), path=self.path) from None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._columns: dict[str, frozenset[str]] = {}
        self._span_indexes: frozenset[str] | None = None

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

    # -- plumbing ----------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
        return self._conn

    def _error(self, exc: sqlite3.DatabaseError) -> StoreError:
        return StoreError(f"cannot read {self.path}: {exc}", path=self.path)

    def _sql(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Our own read-only connection, for the queries the store's API lacks."""
        with self._lock:
            try:
                return self._connection().execute(sql, list(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(connection, ...)`` on our connection, under its lock."""
        with self._lock:
            try:
                return fn(self._connection(), *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A method of the store's query API; bad arguments become :class:`InvalidQuery`."""
        try:
            return getattr(self.store, method)(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        except (ValueError, OverflowError) as exc:
            raise InvalidQuery(str(exc)) from None

    def columns(self, table: str) -> frozenset[str]:
        """The columns ``table`` has in this store (schemas differ across versions)."""
        known = self._columns.get(table)
        if known is None:
            rows = self._sql(f"SELECT name FROM pragma_table_info('{table}')")
            known = self._columns[table] = frozenset(str(r["name"]) for r in rows)
        return known

    @staticmethod
    def _window(since: datetime | None, until: datetime | None) -> tuple[str, list[int]]:
        clauses, params = [], []
        for bound, op in ((since, ">="), (until, "<")):
            moment = clamp_time(bound)
            if moment is not None:
                clauses.append(f"start_time {op} ?")
                params.append(int(moment.timestamp() * 1e9))
        return (" AND ".join(clauses) or "1"), params

    # -- totals ------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        row = self._sql(
            "SELECT COUNT(*) AS n, MAX(start_time) AS last, MAX(rowid) AS r FROM traces"
        )[0]
        return {
            "version": f"{row['n']}:{row['r']}:{row['last']}",
            "trace_count": row["n"],
            "last_start_ms": ms(row["last"]),
            "db_path": str(self.path),
        }

    def summary(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        raw = self._call("summary", clamp_time(since), clamp_time(until))
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
                "sum": (raw["latency_avg_ms"] or 0.0) * raw["trace_count"],
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
            "no_usage_llm_calls": raw.get("no_usage_llm_calls", 0),
            "estimated_llm_calls": raw.get("estimated_llm_calls", 0),
            "cost_complete": not (raw["unpriced_llm_calls"] or raw.get("no_usage_llm_calls", 0)),
            "users": raw["users"],
            "sessions": raw["sessions"],
            "first_start_ms": ms(raw["first_start_time"]),
            "last_start_ms": ms(raw["last_start_time"]),
        }

    def breakdown_page(
        self,
        by: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        with_latency: bool = True,
    ) -> Breakdown:
        """Groups by ``model``, ``agent``, ``user`` or ``day``, a page at a time, with the
        number of groups and their totals (see :mod:`agentos_obs.store._breakdowns`)."""
        if by not in BREAKDOWN_KEYS:
            raise InvalidQuery(f"by must be one of {', '.join(BREAKDOWN_KEYS)}, got {by!r}")
        if (limit is not None and limit < 0) or offset < 0:
            raise InvalidQuery("limit and offset must be >= 0")
        return self._run(  # type: ignore[no-any-return]
            breakdown_page,
            by,
            window=self._window(since, until),
            span_columns=self.columns("spans"),
            trace_columns=self.columns("traces"),
            limit=limit,
            offset=offset,
            with_latency=with_latency,
        )

    def breakdown(
        self, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Every group (the CLI's ``costs``); the dashboard pages with :meth:`breakdown_page`."""
        return self.breakdown_page(by, since, until).rows

    def spend(self, period: str | None, now: float | None = None) -> dict[str, Any]:
        """Cost of the calls in the budget ``period``'s current UTC window (None: all time)."""
        start: datetime | None = None
        end: datetime | None = None
        if period is not None:
            start, end = budget_window(period, time.time() if now is None else now)
        return {
            "spent_usd": float(self._call("summary", start, end)["total_cost_usd"]),
            "window_start": start,
            "window_end": end,
        }

    def usage_rows(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        return list(self._call("usage_rows", clamp_time(since), clamp_time(until)))

    # -- traces ------------------------------------------------------------------------
    def traces(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        **filters: Any,
    ) -> tuple[list[dict[str, Any]], bool]:
        """A page of traces, newest first, and whether more follow."""
        rows = self._call(
            "list_traces",
            limit=limit + 1,
            offset=offset,
            since=clamp_time(since),
            until=clamp_time(until),
            **filters,
        )
        return [api_trace(r) for r in rows[:limit]], len(rows) > limit

    def count_traces(self, since: datetime | None = None, until: datetime | None = None) -> int:
        return int(self._call("count_traces", since=clamp_time(since), until=clamp_time(until)))

    def _trace_id(self, trace_id: str) -> str | None:
        """The full id of ``trace_id`` or of the one trace it is a prefix of."""
        wanted = trace_id.strip().lower()
        if not wanted:
            return None
        rows = self._sql(
            "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? "
            "ORDER BY trace_id LIMIT 2",
            (wanted, wanted + "\uffff"),
        )
        exact = [r["trace_id"] for r in rows if r["trace_id"] == wanted]
        if exact:
            return str(exact[0])
        return str(rows[0]["trace_id"]) if len(rows) == 1 else None

    def _index_names(self) -> frozenset[str]:
        """The indexes of the spans table in this store."""
        if self._span_indexes is None:
            rows = self._sql("SELECT name FROM pragma_index_list('spans')")
            self._span_indexes = frozenset(str(r["name"]) for r in rows)
        return self._span_indexes

    def _names_in_trace(self, trace_id: str, column: str, kind: str | None, large: bool) -> Any:
        """The distinct ``column`` values of a trace's spans (at most ``_LIST_VALUES``).

        A large trace is read through the store's partial index on that column when it has
        one (its size is the store's spans with a value, not the trace's spans); a small one
        through its own spans.
        """
        index = {"model_name": "spans_by_model", "agent_name": "spans_by_agent"}[column]
        hint = f" INDEXED BY {index}" if large and index in self._index_names() else ""
        kind_sql = f" AND kind = '{kind}'" if kind else ""
        return self._sql(
            f"SELECT DISTINCT {column} AS v FROM spans{hint} WHERE trace_id = ?{kind_sql} "
            f"AND {column} IS NOT NULL LIMIT {_LIST_VALUES}",
            (trace_id,),
        )

    def _trace_row(self, trace_id: str, *, large: bool) -> dict[str, Any] | None:
        rows = self._sql("SELECT * FROM traces WHERE trace_id = ?", (trace_id,))
        if not rows:
            return None
        data = dict(rows[0])
        data["attributes"] = json_column(data, "attributes", {})
        models = self._names_in_trace(trace_id, "model_name", None, large)
        agents = self._names_in_trace(trace_id, "agent_name", "agent", large)
        data["models"] = sorted(str(r["v"]) for r in models)
        data["agents"] = sorted(str(r["v"]) for r in agents)
        return data

    def trace(
        self, trace_id: str, *, limit: int | None = None, after: str | None = None
    ) -> dict[str, Any] | None:
        """``{"trace", "spans", "span_total", "next"}``; a unique id prefix is enough.

        Every span in start order when ``limit`` is None. Else at most ``limit`` spans
        after the cursor ``after``, in the order the store holds them (start order for the
        spans of a trace written at once), and ``next``, the cursor of the following page
        (None on the last). Each page costs the same however large the trace: it is a
        range of the table's rowids, not a sort of the trace's spans.
        """
        cursor = _cursor(after)
        if limit is not None and not 1 <= limit <= MAX_SPAN_PAGE:
            raise InvalidQuery(f"span limit must be 1-{MAX_SPAN_PAGE:,}, got {limit}")
        full_id = self._trace_id(trace_id)
        if full_id is None:
            return None
        extent = self._sql(
            "SELECT MIN(rowid) AS lo, MAX(rowid) AS hi, COUNT(*) AS n FROM spans "
            "WHERE trace_id = ?",
            (full_id,),
        )[0]
        total = int(extent["n"])
        row = self._trace_row(full_id, large=total > MAX_SPAN_PAGE)
        if row is None:
            return None
        more = False
        if limit is None:
            rows = self._sql(
                "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time, rowid", (full_id,)
            )
        elif total == 0:
            rows = []
        else:
            # NOT INDEXED: walk the trace's rowid range in the table itself (a page read)
            # rather than every span of the trace through the trace_id index and a sort.
            start = extent["lo"] - 1 if cursor is None else cursor
            rows = self._sql(
                "SELECT rowid AS store_position, * FROM spans NOT INDEXED "
                "WHERE rowid > ? AND rowid <= ? AND trace_id = ? ORDER BY rowid LIMIT ?",
                (start, extent["hi"], full_id, limit + 1),
            )
            more = len(rows) > limit
            rows = rows[:limit]
        records = span_records(
            [dict(r) for r in rows], user_id=row.get("user_id"), session_id=row.get("session_id")
        )
        return {
            "trace": api_trace(row),
            "spans": [api_span(r) for r in records],
            "span_total": total,
            "next": str(rows[-1]["store_position"]) if more else None,
        }

    def trace_record(self, trace_id: str) -> TraceRecord | None:
        """The stored trace read back as a :class:`TraceRecord` (what exporters take)."""
        full_id = self._trace_id(trace_id)
        if full_id is None:
            return None
        rows = self._sql("SELECT * FROM traces WHERE trace_id = ?", (full_id,))
        if not rows:
            return None
        spans = self._sql(
            "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time, rowid", (full_id,)
        )
        return trace_record(dict(rows[0]), [dict(s) for s in spans])

    def iter_trace_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        page_size: int = _TRACE_PAGE,
    ) -> Iterator[TraceRecord]:
        """Every trace started in the window, oldest first, read back as records.

        Keyset paging on (start time, trace id): each query starts after the last trace
        seen, so the cost per page stays flat however deep the window, and traces written
        meanwhile neither repeat nor shift the pages.
        """
        where, params = self._window(since, until)
        last: tuple[int, str] | None = None
        while True:
            after = ""
            extra: list[Any] = []
            if last is not None:
                after = " AND (start_time > ? OR (start_time = ? AND trace_id > ?))"
                extra = [last[0], last[0], last[1]]
            page = self._sql(
                f"SELECT * FROM traces WHERE {where}{after} ORDER BY start_time, trace_id LIMIT ?",
                [*params, *extra, page_size],
            )
            for row in page:
                spans = self._sql(
                    "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time, rowid",
                    (row["trace_id"],),
                )
                yield trace_record(dict(row), [dict(s) for s in spans])
            if len(page) < page_size:
                return
            last = (int(page[-1]["start_time"]), str(page[-1]["trace_id"]))

    # -- dashboard panels --------------------------------------------------------------
    def filter_options(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[str]]:
        where, params = self._window(since, until)
        queries = {
            "models": f"SELECT DISTINCT model_name AS v FROM spans WHERE model_name IS NOT NULL "
            f"AND model_name != '' AND {where} ORDER BY v LIMIT {_FILTER_VALUES}",
            "agents": f"SELECT DISTINCT agent_name AS v FROM spans WHERE agent_name IS NOT NULL "
            f"AND {where} ORDER BY v LIMIT {_FILTER_VALUES}",
            "users": f"SELECT DISTINCT user_id AS v FROM traces WHERE user_id IS NOT NULL "
            f"AND {where} ORDER BY v LIMIT {_FILTER_VALUES}",
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
        lo = params[0] if since is not None else bounds["lo"]
        hi = params[-1] if until is not None else bounds["hi"] + 1
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
            busy = union_ms(clipped) if clipped else 0.0
            own[kind].append(max(0.0, duration - busy))
        kinds = sorted(inclusive, key=lambda k: (-sum(own[k]), k))
        return [
            {
                "stage": kind,
                "count": len(inclusive[kind]),
                "inclusive": distribution(inclusive[kind]),
                "self": distribution(own[kind]),
            }
            for kind in kinds
        ]
