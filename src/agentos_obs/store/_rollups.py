"""Rollups of the span store, kept at write time: what the overview, breakdowns, time
series, costs and ``/metrics`` read instead of scanning spans.

One row per (dimension, time bucket, key) in the ``rollups`` table:

==================  ==========  ======================================================
dimension           bucket      key; ``runs`` and the ``run`` sketch are over
==================  ==========  ======================================================
``DIM_ALL``         hour        ``''``; finished traces, their durations
``DIM_MODEL``       hour        model; LLM calls, their latency
``DIM_AGENT``       hour        agent; agent spans, their durations (calls by agent too)
``DIM_KIND``        hour        span kind; spans, their durations (``self``: self time)
``DIM_USER``        hour        user; finished traces, their durations
``DIM_USER_DAY``    UTC day     user; the same, by day (long windows read fewer rows)
``DIM_MINUTE``      minute      ``''``; traces, errors, cost, tokens (time series)
==================  ==========  ======================================================

Every row sums the calls (``calls``, ``unpriced``, ``no_usage``, ``estimated``, tokens by
type, ``cost_usd`` of the calls with a known cost) and spans of its key. Buckets go by the
**trace's start**, like every window of the query API. ``traces`` counts finished traces.
``DIM_ALL`` rows also hold the HyperLogLog registers of their traces' sessions
(``_hll.py``): distinct sessions over any window without a row per session.

A trace is *folded* into the rollups when it ends (``export``), or when it is declared
``incomplete``: the span rows not yet folded are read back and added (``traces.folded`` is
the sequence number of the last span folded, so a span is never counted twice), and the
trace-level facts (its count, duration, failure) are added once, when it first ends
(``traces.counted``). Retention folds deleted traces back out (``Fold(sign=-1)``): sums
and sketch bins subtract exactly; a bucket's ``run_max`` and ``run_min`` may still reflect
a deleted trace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from agentos_obs.store import _hll as hll
from agentos_obs.store import _sketch as sketch

__all__ = [
    "DIM_AGENT",
    "DIM_ALL",
    "DIM_KIND",
    "DIM_MINUTE",
    "DIM_MODEL",
    "DIM_USER",
    "DIM_USER_DAY",
    "FOLD_COLUMNS",
    "MERGE_FUNCTION",
    "ROLLUP_SUMS",
    "SEQ_BITS",
    "SEQ_MASK",
    "WIDTH_S",
    "Fold",
    "bucket_of",
    "register_functions",
]

DIM_ALL, DIM_MODEL, DIM_AGENT, DIM_KIND, DIM_USER, DIM_USER_DAY, DIM_MINUTE = range(7)
HOUR, DAY, MINUTE = 3600, 86400, 60
WIDTH_S = {
    DIM_ALL: HOUR,
    DIM_MODEL: HOUR,
    DIM_AGENT: HOUR,
    DIM_KIND: HOUR,
    DIM_USER: HOUR,
    DIM_USER_DAY: DAY,
    DIM_MINUTE: MINUTE,
}

# span_key = trace_key << SEQ_BITS | seq: a trace's spans are one range of the table.
SEQ_BITS = 24
SEQ_MASK = (1 << SEQ_BITS) - 1

# The columns of a span row the fold reads, in this order.
FOLD_COLUMNS = (
    "kind",
    "status",
    "model_name",
    "agent_name",
    "llm_call",
    "cost_status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "duration_ms",
    "self_ms",
)
_FAILED = frozenset({"error", "timeout"})
_NS = 1_000_000_000

ROLLUP_SUMS = (
    "spans",
    "traces",
    "calls",
    "unpriced",
    "no_usage",
    "estimated",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "runs",
    "errors",
    "run_sum",
    "self_sum",
)
MERGE_FUNCTION = "agentos_bins_merge"
HLL_FUNCTION = "agentos_hll_merge"


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions the rollup upsert uses to merge blobs (writers only)."""
    conn.create_function(MERGE_FUNCTION, 2, sketch.merge_blobs, deterministic=True)
    conn.create_function(HLL_FUNCTION, 2, hll.merge, deterministic=True)


def bucket_of(time_ns: int, width_s: int) -> int:
    """Start (epoch seconds) of the bucket of ``width_s`` seconds holding ``time_ns``."""
    seconds = time_ns // _NS
    return seconds - seconds % width_s


class Acc:
    """The deltas of one rollup row."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "calls",
        "cost_usd",
        "errors",
        "estimated",
        "input_tokens",
        "no_usage",
        "output_tokens",
        "reasoning_tokens",
        "run_bins",
        "run_max",
        "run_min",
        "run_sum",
        "runs",
        "self_bins",
        "self_sum",
        "sessions",
        "spans",
        "traces",
        "unpriced",
    )

    def __init__(self) -> None:
        self.spans = self.traces = self.calls = 0
        self.unpriced = self.no_usage = self.estimated = 0
        self.input_tokens = self.output_tokens = self.cache_read_tokens = 0
        self.cache_write_tokens = self.reasoning_tokens = 0
        self.cost_usd = 0.0
        self.runs = self.errors = 0
        self.run_sum = self.self_sum = 0.0
        self.run_min: float | None = None
        self.run_max: float | None = None
        self.run_bins: dict[int, int] = {}
        self.self_bins: dict[int, int] = {}
        self.sessions: dict[int, int] = {}  # HyperLogLog registers (DIM_ALL rows)

    def run(self, value: float, sign: int) -> None:
        """One measured run (a duration or a latency, in ms)."""
        self.runs += sign
        self.run_sum += sign * value
        key = sketch.key_of(value)
        self.run_bins[key] = self.run_bins.get(key, 0) + sign
        if sign > 0:
            if self.run_min is None or value < self.run_min:
                self.run_min = value
            if self.run_max is None or value > self.run_max:
                self.run_max = value

    def values(self) -> tuple[Any, ...]:
        return (
            self.spans,
            self.traces,
            self.calls,
            self.unpriced,
            self.no_usage,
            self.estimated,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_usd,
            self.runs,
            self.errors,
            self.run_sum,
            self.run_min,
            self.run_max,
            sketch.encode(self.run_bins) if self.run_bins else None,
            self.self_sum,
            sketch.encode(self.self_bins) if self.self_bins else None,
            hll.encode(self.sessions) if self.sessions else None,
        )


_COLUMNS = (
    *ROLLUP_SUMS[:14],
    "run_sum",
    "run_min",
    "run_max",
    "run_bins",
    "self_sum",
    "self_bins",
    "sessions_hll",
)
_UPSERT = (
    f"INSERT INTO rollups (dim, bucket, key, {', '.join(_COLUMNS)}) "
    f"VALUES (?, ?, ?, {', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (dim, bucket, key) DO UPDATE SET "
    + ", ".join(
        [
            *(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS),
            "run_min = MIN(COALESCE(run_min, excluded.run_min), "
            "COALESCE(excluded.run_min, run_min))",
            "run_max = MAX(COALESCE(run_max, excluded.run_max), "
            "COALESCE(excluded.run_max, run_max))",
            # CASE first: rows without sketches (sessions, minutes) never call Python.
            "run_bins = CASE WHEN excluded.run_bins IS NULL THEN run_bins "
            f"WHEN run_bins IS NULL THEN excluded.run_bins "
            f"ELSE {MERGE_FUNCTION}(run_bins, excluded.run_bins) END",
            "self_bins = CASE WHEN excluded.self_bins IS NULL THEN self_bins "
            f"WHEN self_bins IS NULL THEN excluded.self_bins "
            f"ELSE {MERGE_FUNCTION}(self_bins, excluded.self_bins) END",
            "sessions_hll = CASE WHEN excluded.sessions_hll IS NULL THEN sessions_hll "
            f"WHEN sessions_hll IS NULL THEN excluded.sessions_hll "
            f"ELSE {HLL_FUNCTION}(sessions_hll, excluded.sessions_hll) END",
        ]
    )
)
# After a subtraction: a row nothing is left in goes.
_DELETE_EMPTY = (
    "DELETE FROM rollups WHERE dim = ? AND bucket = ? AND key = ? "
    "AND spans <= 0 AND traces <= 0 AND calls <= 0 AND runs <= 0"
)


class Fold:
    """Rollup deltas gathered over some traces, written with :meth:`write`.

    ``sign=-1`` takes the same facts back out (retention).
    """

    def __init__(self, sign: int = 1) -> None:
        self.sign = sign
        self.rows: dict[tuple[int, int, str], Acc] = {}

    def acc(self, dim: int, bucket: int, key: str) -> Acc:
        slot = self.rows.get((dim, bucket, key))
        if slot is None:
            slot = self.rows[(dim, bucket, key)] = Acc()
        return slot

    def _totals_targets(self, start_ns: int, user: str | None, session: str | None) -> list[Acc]:
        hour, day = bucket_of(start_ns, HOUR), bucket_of(start_ns, DAY)
        everything = self.acc(DIM_ALL, hour, "")
        if session and self.sign > 0:  # (a count of distinct values cannot subtract)
            hll.add(everything.sessions, session)
        return [
            everything,
            self.acc(DIM_MINUTE, bucket_of(start_ns, MINUTE), ""),
            self.acc(DIM_USER, hour, user or ""),
            self.acc(DIM_USER_DAY, day, user or ""),
        ]

    def spans(
        self,
        start_ns: int,
        user: str | None,
        session: str | None,
        facts: Iterable[Sequence[Any]],
    ) -> None:
        """Fold span rows (their :data:`FOLD_COLUMNS`) of one trace starting at ``start_ns``."""
        sign = self.sign
        hour = bucket_of(start_ns, HOUR)
        rows = self.rows
        key_of = sketch.key_of
        by_kind: dict[str, Acc] = {}
        spans = calls = unpriced = no_usage = estimated = 0
        inp = out = cache_read = cache_write = reasoning = 0
        cost_sum = 0.0
        for (
            kind,
            status,
            model,
            agent,
            llm_call,
            cost_status,
            i,
            o,
            cr,
            cw,
            rs,
            cost,
            latency,
            duration,
            self_ms,
        ) in facts:
            spans += 1
            failed = status in _FAILED
            duration = duration or 0.0
            k = by_kind.get(kind)
            if k is None:
                k = by_kind[kind] = self.acc(DIM_KIND, hour, kind)
            k.spans += sign
            if failed:
                k.errors += sign
            k.run(duration, sign)
            own = duration if self_ms is None else self_ms
            k.self_sum += sign * own
            bins = k.self_bins
            bin_key = key_of(own)
            bins[bin_key] = bins.get(bin_key, 0) + sign
            if kind == "agent":
                a = rows.get((DIM_AGENT, hour, agent or "")) or self.acc(
                    DIM_AGENT, hour, agent or ""
                )
                a.spans += sign
                if failed:
                    a.errors += sign
                a.run(duration, sign)
            if not llm_call:
                continue
            calls += 1
            m = rows.get((DIM_MODEL, hour, model or "")) or self.acc(DIM_MODEL, hour, model or "")
            a = rows.get((DIM_AGENT, hour, agent or "")) or self.acc(DIM_AGENT, hour, agent or "")
            m.spans += sign
            m.calls += sign
            a.calls += sign
            if failed:
                m.errors += sign
            m.run(duration if latency is None else latency, sign)
            if cost_status == "no_usage":
                no_usage += 1
                m.no_usage += sign
                a.no_usage += sign
                continue
            if cost_status == "estimated":
                estimated += 1
                m.estimated += sign
                a.estimated += sign
            if cost is None:
                unpriced += 1
                m.unpriced += sign
                a.unpriced += sign
            else:
                cost_sum += cost
                m.cost_usd += sign * cost
                a.cost_usd += sign * cost
            inp += i
            out += o
            cache_read += cr
            cache_write += cw
            reasoning += rs
            for slot in (m, a):
                slot.input_tokens += sign * i
                slot.output_tokens += sign * o
                slot.cache_read_tokens += sign * cr
                slot.cache_write_tokens += sign * cw
                slot.reasoning_tokens += sign * rs
        if not spans:
            return
        for slot in self._totals_targets(start_ns, user, session):
            slot.spans += sign * spans
            slot.calls += sign * calls
            slot.unpriced += sign * unpriced
            slot.no_usage += sign * no_usage
            slot.estimated += sign * estimated
            slot.input_tokens += sign * inp
            slot.output_tokens += sign * out
            slot.cache_read_tokens += sign * cache_read
            slot.cache_write_tokens += sign * cache_write
            slot.reasoning_tokens += sign * reasoning
            slot.cost_usd += sign * cost_sum

    def move_self(self, start_ns: int, kind: str, before: float, after: float) -> None:
        """A folded span's self time was corrected from ``before`` to ``after``."""
        acc = self.acc(DIM_KIND, bucket_of(start_ns, HOUR), kind)
        acc.self_sum += self.sign * (after - before)
        bins = acc.self_bins
        for value, change in ((before, -self.sign), (after, self.sign)):
            key = sketch.key_of(value)
            bins[key] = bins.get(key, 0) + change

    def trace(
        self,
        start_ns: int,
        duration_ms: float,
        status: str,
        user: str | None,
        session: str | None,
        models: Iterable[str | None],
        agents: Iterable[str | None],
    ) -> None:
        """Fold the trace-level facts of one finished trace (once per trace).

        ``models``/``agents``: the keys of its calls (each key's ``traces`` counts it).
        """
        sign = self.sign
        failed = status in _FAILED
        hour = bucket_of(start_ns, HOUR)
        targets = self._totals_targets(start_ns, user, session)
        for index, slot in enumerate(targets):
            slot.traces += sign
            if failed:
                slot.errors += sign
            if index == 1:  # minute rows: counts only, no sketch
                slot.runs += sign
            else:
                slot.run(duration_ms, sign)
        for model in set(models):
            self.acc(DIM_MODEL, hour, model or "").traces += sign
        for agent in set(agents):
            self.acc(DIM_AGENT, hour, agent or "").traces += sign

    def write(self, conn: sqlite3.Connection) -> int:
        """Upsert the deltas; return the rows touched. Needs :func:`register_functions`."""
        if not self.rows:
            return 0
        conn.executemany(
            _UPSERT,
            [(dim, bucket, key, *acc.values()) for (dim, bucket, key), acc in self.rows.items()],
        )
        if self.sign < 0:
            conn.executemany(_DELETE_EMPTY, list(self.rows))
        touched = len(self.rows)
        self.rows = {}
        return touched
