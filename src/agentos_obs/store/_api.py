"""The query API of :class:`~agentos_obs.store.SQLiteStore` (the SQL is in ``_queries.py``).

Each method runs on the calling thread's own connection: concurrent readers (the
dashboard's request threads) never queue behind one lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import agentos_obs.store._queries as queries
from agentos_obs.store._queries import TimeArg
from agentos_obs.tracing import SpanStatus

__all__ = ["StoreQueries"]


class StoreQueries:
    """Mixed into ``SQLiteStore``, which provides ``_query(fn, *args, **kwargs)``."""

    def _query(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def list_traces(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        status: str | SpanStatus | Iterable[str | SpanStatus] | None = None,
        model: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        min_cost: float | None = None,
        min_duration_ms: float | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        session: str | None = None,
        order_by: str = "start_time",
        descending: bool = True,
    ) -> list[dict[str, Any]]:
        """Traces matching every filter given, newest first (or by ``order_by``).

        Time bounds (``since`` inclusive, ``until`` exclusive, on the trace start) accept a
        ``datetime`` (naive = UTC), a ``timedelta`` ("that long ago") or epoch seconds
        (numbers above 1e15 are epoch ns). ``status``: one status or several ("ok",
        "error", "timeout", "cancelled", "running", "incomplete"). ``model``/``agent``:
        traces with at least one span of that model / agent span of that agent.
        ``user``/``session``: exact ids. ``min_cost`` in USD, ``min_duration_ms`` in ms.
        ``search``: substring of the trace name, trace id, user, session, or any span name
        or model. ``order_by``: ``start_time``, ``duration_ms``, ``cost_usd`` or
        ``total_tokens``.

        Each row: ``trace_id``, ``name``, ``service_name``, ``start_time``/``end_time``
        (epoch ns), ``duration_ms``, ``status`` (``running`` while it runs: counters and
        times so far), ``root_span_id``, ``root_kind``, ``remote_parent_id``, ``user_id``,
        ``session_id``, ``span_count``, ``error_count``, ``llm_calls`` (every call, a
        failed one too), ``unpriced_llm_calls``, ``no_usage_llm_calls``,
        ``estimated_llm_calls``, ``cost_usd``, ``input_tokens``, ``output_tokens``,
        ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``,
        ``total_tokens``, ``attributes`` (dict), ``models`` and ``agents`` (sorted lists).
        """
        return self._query(  # type: ignore[no-any-return]
            queries.list_traces,
            limit=limit,
            offset=offset,
            order_by=order_by,
            descending=descending,
            since=since,
            until=until,
            status=status,
            model=model,
            agent=agent,
            user=user,
            session=session,
            min_cost=min_cost,
            min_duration_ms=min_duration_ms,
            search=search,
        )

    def count_traces(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        status: str | SpanStatus | Iterable[str | SpanStatus] | None = None,
        model: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        min_cost: float | None = None,
        min_duration_ms: float | None = None,
        search: str | None = None,
        *,
        session: str | None = None,
    ) -> int:
        """How many traces :meth:`list_traces` would return without a limit."""
        return self._query(  # type: ignore[no-any-return]
            queries.count_traces,
            since=since,
            until=until,
            status=status,
            model=model,
            agent=agent,
            user=user,
            session=session,
            min_cost=min_cost,
            min_duration_ms=min_duration_ms,
            search=search,
        )

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace (the row of :meth:`list_traces`) with ``spans``; None if unknown.

        ``trace_id`` may be a unique prefix. A running trace has the spans written so far.
        ``spans`` are ordered by start time; each has ``span_id``, ``parent_id`` (build the
        tree from these; a root's parent may be in another service), ``name``, ``kind``,
        ``status``, ``start_time``, ``end_time``, ``duration_ms``, ``self_ms``,
        ``latency_ms``, ``model_name``, ``provider``, the token counts, ``total_tokens``,
        ``cost_usd`` (None: unknown price), ``counts_usage`` (this span's usage counts
        towards totals), ``llm_call``, ``cost_status`` (``priced``, ``unpriced``,
        ``no_usage``, ``estimated``; None when not a call), ``agent_name``, ``attributes``
        (dict) and ``events`` (list of ``{name, timestamp, attributes}``).
        """
        return self._query(queries.get_trace, trace_id)  # type: ignore[no-any-return]

    def iter_traces(
        self, since: TimeArg = None, until: TimeArg = None, *, page: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every trace of the window with its spans, oldest first, streamed with keyset
        paging (export: time linear in the traces exported, memory one page)."""
        return self._query(  # type: ignore[no-any-return]
            queries.iter_traces, since, until, page=page
        )

    def export_lines(
        self, since: TimeArg = None, until: TimeArg = None, *, page: int = 500
    ) -> Iterator[str]:
        """Every trace of the window as a JSON line (``TraceRecord.to_dict()``, the JSONL
        exporter's line), oldest first, streamed with keyset paging; SQLite writes the
        JSON. One million spans take a few seconds."""
        return self._query(  # type: ignore[no-any-return]
            queries.iter_export_lines, since, until, page=page
        )

    def aggregate(
        self, by: str = "model", since: TimeArg = None, until: TimeArg = None
    ) -> list[dict[str, Any]]:
        """Totals and latency percentiles per model, agent, user or UTC day, from the
        rollups (no scan of the spans).

        Each row: ``key`` (None for calls with no model / agent / user), ``cost_usd``,
        ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
        ``reasoning_tokens``, ``total_tokens``, ``llm_calls`` (every call, failed ones
        too), ``unpriced_llm_calls``, ``no_usage_llm_calls`` (calls that reported no usage:
        their cost is unknown), ``estimated_llm_calls``, ``traces`` (ended traces with a
        call of the key), ``runs``, ``errors``, ``error_rate`` and ``latency_avg_ms``/
        ``latency_max_ms``/``latency_p50_ms``/``latency_p95_ms``/``latency_p99_ms``
        (nearest rank, within 1 %) over the runs. A run is an LLM call (including failed
        ones) for ``model``, an agent span for ``agent``, an ended trace for ``user`` and
        ``day``. Costs and tokens of ``agent`` go to the innermost enclosing agent. Sorted
        by cost (``day``: by date).
        """
        return self._query(queries.aggregate, by, since, until)  # type: ignore[no-any-return]

    def summary(self, since: TimeArg = None, until: TimeArg = None) -> dict[str, Any]:
        """Headline numbers over the traces started in the window, from the rollups.

        ``trace_count`` (every status), ``finished_traces``, ``running_traces``,
        ``incomplete_traces``, ``span_count``, ``error_count``, ``error_rate`` (ended traces
        in error or timeout), ``llm_calls``, ``unpriced_llm_calls``, ``no_usage_llm_calls``,
        ``estimated_llm_calls``, ``total_cost_usd``, the token totals, ``total_tokens``,
        ``users``, ``sessions``, ``first_start_time``, ``last_start_time`` and the ended
        traces' latency ``latency_avg_ms``/``_max_ms``/``_p50_ms``/``_p95_ms``/``_p99_ms``.
        Spans, calls, tokens and cost count once a trace has ended or is incomplete.
        """
        return self._query(queries.summary, since, until)  # type: ignore[no-any-return]

    def timeseries(
        self, buckets: int = 30, since: TimeArg = None, until: TimeArg = None
    ) -> dict[str, Any]:
        """Traces, failed traces, cost and tokens per equal time bucket (see
        :func:`agentos_obs.store._queries.timeseries`)."""
        return self._query(  # type: ignore[no-any-return]
            queries.timeseries, buckets, since, until
        )

    def stages(self, since: TimeArg = None, until: TimeArg = None) -> list[dict[str, Any]]:
        """Latency by span kind, inclusive and self time (see
        :func:`agentos_obs.store._queries.stages`)."""
        return self._query(queries.stages, since, until)  # type: ignore[no-any-return]

    def filter_options(self, since: TimeArg = None, until: TimeArg = None) -> dict[str, list[str]]:
        """Models, agents and users seen in the window (``models``, ``agents``, ``users``)."""
        return self._query(queries.filter_options, since, until)  # type: ignore[no-any-return]

    def change_marker(self) -> dict[str, Any]:
        """A value that changes whenever something is written (what pages poll)."""
        return self._query(queries.change_marker)  # type: ignore[no-any-return]

    def usage_rows(self, since: TimeArg = None, until: TimeArg = None) -> list[dict[str, Any]]:
        """Every counted LLM call in the window, oldest first, for re-pricing.

        Each row: ``trace_id``, ``span_id``, ``start_time``, ``model_name``, ``provider``,
        ``input_tokens`` (includes cache tokens), ``output_tokens``, ``cache_read_tokens``,
        ``cache_write_tokens``, ``reasoning_tokens``, ``cost_usd``, ``cost_status``
        (``priced``, ``unpriced`` or ``estimated``), ``agent_name``, ``user_id``,
        ``session_id``. Calls that reported no usage have nothing to re-price and are not
        rows here. Holds them all in memory: prefer :meth:`iter_usage_rows`.
        """
        return self._query(queries.usage_rows, since, until)  # type: ignore[no-any-return]

    def iter_usage_rows(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        *,
        min_input_tokens: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`usage_rows`, streamed in trace order (bounded memory); with
        ``min_input_tokens`` (>= ``LONG_INPUT_TOKENS``) only the calls with more input."""
        return self._query(  # type: ignore[no-any-return]
            queries.iter_usage_rows, since, until, min_input_tokens=min_input_tokens
        )
