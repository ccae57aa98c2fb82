"""Dashboard aggregations over every finished trace, updated incrementally.

``record_trace`` (added as a tracer exporter) folds one
:class:`~agentos_obs.tracing.TraceRecord` into running aggregates in O(spans of that trace);
``get_summary`` and ``get_latency_breakdown`` only read them, in O(number of keys) — never
O(traces seen). Percentiles come from DDSketch (relative error bound, default 1 %) over *all*
traces, not a window of recent ones.

Everything comes from the sealed records, never re-derived: usage from ``trace.rollup``,
``trace.by_model()`` and ``trace.by_agent()`` (agents are ``record.agent``: the
``agent.name`` attribute, else the enclosing agent span's name), the tree from
``trace.children()``, self time from ``trace.self_time_ms()``. Every counted call is a call,
a failed one included; ``no_usage_llm_calls``, ``unpriced_llm_calls`` and
``estimated_llm_calls`` say how many the cost leaves out or estimates (``cost_complete``).

Meaning of the latency figures (the prototype double-counted nested spans):

- ``count``, ``avg_ms``, ``p50/p95/p99_ms`` describe every span of the stage (inclusive time:
  the span's own duration, children included).
- ``total_ms`` sums only *outermost* spans of the stage: a span nested inside another span
  of the same stage (an agent calling a sub-agent, a chain in a chain) is already inside its
  ancestor's time and is not added again. Concurrent sibling spans each count in full
  (span-time, like CPU-seconds).
- ``self_*`` is exclusive time: a span's duration minus the union of its children's
  intervals clipped to the span (children running concurrently overlap: the union, not the
  sum, is subtracted). Self times never double count, so ``self_total_ms`` sums all spans.

Off the hot path: ``record_trace`` only queues the trace (an append); a shared daemon thread
folds queued traces in every ``_DRAIN_INTERVAL_S``, and every query folds in whatever is
still queued first. Every trace recorded before a query is in its answer: a trace leaves the
queue only under the ingest lock, and is folded in before that lock is released, so a query
(which takes the same lock to drain) either folds it itself or waits until it is folded. At
most ``max_pending`` traces wait; past that the caller folds them in itself (memory stays
bounded and nothing is dropped).
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple, Protocol

from ddsketch import LogCollapsingLowestDenseDDSketch

from agentos_obs._internal.guard import count_drop, report
from agentos_obs.cost._keys import OTHER_LABEL, resolve_key, rollup_slot
from agentos_obs.errors import ConfigurationError
from agentos_obs.tracing import (
    NONE_LABEL,
    SpanKind,
    SpanRecord,
    Trace,
    TraceRecord,
    UsageRollup,
)

__all__ = ["ObservabilityDashboard"]

_SKETCH_BINS = 2048  # bounds each sketch's memory; the collapsed low end is below 1 µs at 1 %
_DRAIN_INTERVAL_S = 0.2


class _Drainer:
    """One daemon thread for all dashboards: folds queued traces in while the app waits on
    I/O, instead of on the thread that finished the trace. Restarted lazily after a fork."""

    def __init__(self) -> None:
        self._dashboards: weakref.WeakSet[ObservabilityDashboard] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = -1

    def register(self, dashboard: ObservabilityDashboard) -> None:
        with self._lock:
            self._dashboards.add(dashboard)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(
                    target=self._run, name="agentos-obs-dashboard", daemon=True
                ).start()

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(_DRAIN_INTERVAL_S)
            with self._lock:
                dashboards = [d for d in self._dashboards if d._pending]
            for dashboard in dashboards:
                dashboard._drain(reraise=False)
            del dashboards


_drainer = _Drainer()


class _MetricsSource(Protocol):
    def collect(self) -> Any: ...


class _Distribution:
    """Count, sum and a DDSketch of one series of durations."""

    __slots__ = ("sketch", "total")

    def __init__(self, relative_accuracy: float) -> None:
        self.sketch = LogCollapsingLowestDenseDDSketch(relative_accuracy, bin_limit=_SKETCH_BINS)
        self.total = 0.0

    def add(self, value: float) -> None:
        self.sketch.add(value)
        self.total += value

    @property
    def count(self) -> int:
        return int(self.sketch.count)

    def quantile(self, q: float) -> float:
        value = self.sketch.get_quantile_value(q)
        return 0.0 if value is None else float(value)

    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class _Stage:
    """Inclusive and self time of one stage (a span kind, or a (kind, name) pair)."""

    __slots__ = ("inclusive", "kind", "name", "outer_total", "self_time")

    def __init__(self, kind: str, name: str | None, relative_accuracy: float) -> None:
        self.kind = kind
        self.name = name
        self.inclusive = _Distribution(relative_accuracy)
        self.self_time = _Distribution(relative_accuracy)
        self.outer_total = 0.0

    def to_row(self) -> dict[str, Any]:
        incl, own = self.inclusive, self.self_time
        return {
            "stage": self.kind if self.name is None else self.name,
            "kind": self.kind,
            "count": incl.count,
            "avg_ms": incl.avg(),
            "p50_ms": incl.quantile(0.50),
            "p95_ms": incl.quantile(0.95),
            "p99_ms": incl.quantile(0.99),
            "total_ms": self.outer_total,
            "self_avg_ms": own.avg(),
            "self_p50_ms": own.quantile(0.50),
            "self_p95_ms": own.quantile(0.95),
            "self_total_ms": own.total,
        }


class _Timing(NamedTuple):
    """Inclusive and self time of one ended span, and whether it is the outermost span of
    its kind / of its (kind, name) on its path from the root."""

    kind: str
    name: str
    inclusive_ms: float
    self_ms: float
    outermost_of_kind: bool
    outermost_of_name: bool


class _TraceDigest(NamedTuple):
    """What the dashboard keeps from one trace, computed outside the aggregate lock."""

    entry: dict[str, Any]
    kind_counts: dict[str, int]
    timings: list[_Timing]


def _walk(trace: TraceRecord) -> Iterator[tuple[SpanRecord, bool, bool]]:
    """Depth-first over the trace's tree (``trace.children``), yielding (record, outermost
    of its kind, outermost of its (kind, name)). O(spans); survives orphans and cycles."""
    spans = trace.spans
    children = trace.children
    nested = {kid.span_id for s in spans for kid in children(s.span_id)}
    kinds_open: dict[SpanKind, int] = {}
    names_open: dict[tuple[SpanKind, str], int] = {}
    visited: set[str] = set()
    # Spans reachable only through a parent cycle are walked as roots afterwards.
    for root in itertools.chain([s for s in spans if s.span_id not in nested], spans):
        if root.span_id in visited:
            continue
        stack: list[tuple[SpanRecord, bool]] = [(root, True)]
        while stack:
            record, entering = stack.pop()
            kind = record.kind
            key = (kind, record.name)
            if not entering:
                kinds_open[kind] -= 1
                names_open[key] -= 1
                continue
            if record.span_id in visited:
                continue
            visited.add(record.span_id)
            yield record, not kinds_open.get(kind), not names_open.get(key)
            kinds_open[kind] = kinds_open.get(kind, 0) + 1
            names_open[key] = names_open.get(key, 0) + 1
            stack.append((record, False))
            stack.extend((kid, True) for kid in reversed(children(record.span_id)))


def _digest(trace: TraceRecord) -> _TraceDigest:
    kind_counts: dict[str, int] = {}
    timings: list[_Timing] = []
    self_time = trace.self_time_ms
    for record, outer_kind, outer_name in _walk(trace):
        kind = record.kind.value
        kind_counts[kind] = kind_counts.get(kind, 0) + 1
        timings.append(
            _Timing(
                kind, record.name, record.duration_ms, self_time(record), outer_kind, outer_name
            )
        )
    rollup = trace.rollup
    entry = {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "duration_ms": trace.duration_ms,
        "cost_usd": rollup.cost_usd,
        "cost_complete": rollup.cost_complete,
        "total_tokens": rollup.total_tokens,
        "llm_calls": rollup.llm_calls,
        "span_count": len(trace.spans),
        "status": trace.status.value,
        "has_error": trace.has_error,
        "start_time": trace.start_time,
        "user_id": trace.user_id,
        "session_id": trace.session_id,
    }
    # Built once per record and cached there: computed here, outside the aggregate lock.
    trace.by_model()
    trace.by_agent()
    return _TraceDigest(entry, kind_counts, timings)


class _TopN:
    """The N largest entries by a score: a bounded min-heap, O(log N) per offer."""

    __slots__ = ("_heap", "_n", "_seq")

    def __init__(self, n: int) -> None:
        self._n = n
        self._heap: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()  # tie-breaker: dicts are not comparable

    def offer(self, score: float, entry: dict[str, Any]) -> None:
        item = (score, next(self._seq), entry)
        if len(self._heap) < self._n:
            heapq.heappush(self._heap, item)
        elif score > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def items(self) -> list[dict[str, Any]]:
        return [dict(e) for _, _, e in sorted(self._heap, key=lambda i: (-i[0], i[1]))]


class ObservabilityDashboard:
    """Aggregates finished traces for Grafana-style dashboards and the web UI.

    Usage::

        dashboard = ObservabilityDashboard(tracer, metrics)
        tracer.add_exporter(dashboard.record_trace)
        summary = dashboard.get_summary()

    ``trace_count`` in the summary is the number of traces this dashboard aggregated;
    ``total_traces`` is the number the tracer finished (``tracer.trace_count``), which can
    be larger (traces finished before the dashboard was attached, sampled-out traces).
    """

    queued = True  # record_trace only queues: a tracer calls it directly

    def __init__(
        self,
        tracer: Any = None,
        metrics: _MetricsSource | None = None,
        *,
        relative_accuracy: float = 0.01,
        top_n: int = 10,
        recent_capacity: int = 1000,
        max_keys: int = 10_000,
        max_pending: int = 10_000,
    ) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ConfigurationError(
                f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}"
            )
        for label, value in (
            ("top_n", top_n),
            ("recent_capacity", recent_capacity),
            ("max_keys", max_keys),
            ("max_pending", max_pending),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{label} must be a positive int, got {value!r}")
        self._tracer = tracer
        self._metrics = metrics
        self.relative_accuracy = relative_accuracy
        self._top_n = top_n
        self._recent_capacity = recent_capacity
        self._max_keys = max_keys
        self._max_pending = max_pending
        self._lock = threading.Lock()  # the aggregates
        # Taken by whoever drains the queue, for the whole pop-and-fold of each trace: a
        # query drains under it too, so it never misses a trace popped but not yet folded.
        self._ingest_lock = threading.Lock()
        self._pending: deque[TraceRecord] = deque()
        self._registered = False
        self.reset()

    def reset(self) -> None:
        """Forget everything aggregated so far (and anything still queued)."""
        accuracy = self.relative_accuracy
        with self._ingest_lock:  # a trace being folded now must not survive the reset
            self._pending.clear()
            with self._lock:
                self._traces = 0
                self._error_traces = 0
                self._spans = 0
                self._durations = _Distribution(accuracy)
                self._usage = UsageRollup()
                self._kind_counts: Counter[str] = Counter()
                self._by_kind: dict[str, _Stage] = {}
                self._by_name: dict[tuple[str, str], _Stage] = {}
                self._by_model: dict[str, UsageRollup] = {}
                self._by_agent: dict[str, UsageRollup] = {}
                self._by_user: dict[str, UsageRollup] = {}
                self._by_session: dict[str, UsageRollup] = {}
                self._errors_by_user: Counter[str] = Counter()
                self._slowest = _TopN(self._top_n)
                self._costliest = _TopN(self._top_n)
                self._recent: deque[dict[str, Any]] = deque(maxlen=self._recent_capacity)

    # -- ingestion -------------------------------------------------------------------
    def record_trace(self, trace: TraceRecord | Trace) -> None:
        """Queue one finished trace for the aggregates (use as ``tracer.add_exporter(...)``).

        The tracer hands exporters a :class:`TraceRecord`. A finished live ``Trace`` is
        taken through its record; one still running has none and is refused (TypeError).
        """
        if not isinstance(trace, TraceRecord):
            record = getattr(trace, "record", None)
            if not isinstance(record, TraceRecord):
                raise TypeError(
                    f"record_trace needs a finished trace (a TraceRecord), got {trace!r}"
                )
            trace = record
        self._pending.append(trace)
        if not self._registered:
            self._registered = True
            _drainer.register(self)
        if len(self._pending) >= self._max_pending:
            self._drain()

    export = record_trace  # so ``tracer.add_exporter(dashboard)`` works too

    def flush(self) -> None:
        """Fold in every queued trace now (queries do this themselves)."""
        self._drain()

    @property
    def pending_traces(self) -> int:
        """Traces recorded but not folded in yet (0 once the background thread caught up)."""
        with self._ingest_lock:  # nothing is half-folded while this lock is held
            return len(self._pending)

    def _drain(self, reraise: bool = True) -> None:
        pending = self._pending
        with self._ingest_lock:
            # Only holders of this lock pop, so the queue cannot empty under us.
            while pending:
                trace = pending.popleft()
                try:
                    self._ingest(trace)
                except Exception as exc:
                    report("dashboard.record_trace", exc, reraise_in_strict=reraise)

    def _ingest(self, trace: TraceRecord) -> None:
        """Fold one trace into the aggregates: O(spans of the trace)."""
        digest = _digest(trace)  # outside the aggregate lock: queries are not held up
        rollup = trace.rollup
        has_error = digest.entry["has_error"]
        duration_ms = digest.entry["duration_ms"]
        max_keys = self._max_keys
        accuracy = self.relative_accuracy
        with self._lock:
            self._traces += 1
            self._error_traces += has_error
            self._spans += len(trace.spans)
            self._durations.add(duration_ms)
            self._usage.merge(rollup)
            self._usage.traces += 1
            self._kind_counts.update(digest.kind_counts)
            for t in digest.timings:
                stage = self._by_kind.get(t.kind)
                if stage is None:
                    stage = self._by_kind[t.kind] = _Stage(t.kind, None, accuracy)
                self._add_timing(stage, t, t.outermost_of_kind)
                named = self._by_name.get((t.kind, t.name))
                if named is None:
                    named = self._named_stage(t.kind, t.name)
                self._add_timing(named, t, t.outermost_of_name)
            # Per-key rollups of the trace count it once each (their ``traces`` is 1).
            for src, dst in (
                (trace.by_model(), self._by_model),
                (trace.by_agent(), self._by_agent),
            ):
                for key, part in src.items():
                    rollup_slot(dst, key, max_keys, "dashboard").merge(part)
            user = resolve_key(self._by_user, trace.user_id or NONE_LABEL, max_keys, "dashboard")
            slot = rollup_slot(self._by_user, user, max_keys, "dashboard")
            slot.merge(rollup)
            slot.traces += 1
            self._errors_by_user[user] += has_error
            session = trace.session_id or NONE_LABEL
            slot = rollup_slot(self._by_session, session, max_keys, "dashboard")
            slot.merge(rollup)
            slot.traces += 1
            self._slowest.offer(duration_ms, digest.entry)
            self._costliest.offer(rollup.cost_usd, digest.entry)
            self._recent.append(digest.entry)

    def _named_stage(self, kind: str, name: str) -> _Stage:
        """Stage of a new (kind, name) pair; past ``max_keys`` pairs, names share ``(other)``."""
        key = (kind, name)
        if len(self._by_name) >= self._max_keys:
            count_drop("dashboard", reason=f"more than {self._max_keys} span names")
            key = (kind, OTHER_LABEL)
        stage = self._by_name.get(key)
        if stage is None:
            stage = self._by_name[key] = _Stage(kind, key[1], self.relative_accuracy)
        return stage

    @staticmethod
    def _add_timing(stage: _Stage, timing: _Timing, outermost: bool) -> None:
        stage.inclusive.add(timing.inclusive_ms)
        stage.self_time.add(timing.self_ms)
        if outermost:
            stage.outer_total += timing.inclusive_ms

    # -- queries ---------------------------------------------------------------------
    def get_summary(self) -> dict[str, Any]:
        """Totals, percentiles and rollups of every trace recorded (O(number of keys))."""
        self._drain()
        metrics = self._collect_metrics()
        with self._lock:
            if self._traces == 0:
                return {"message": "No traces recorded"}
            usage, durations = self._usage, self._durations
            return {
                "trace_count": self._traces,
                "total_traces": self._total_traces(),
                "error_rate": self._error_traces / self._traces,
                "error_traces": self._error_traces,
                "span_count": self._spans,
                "relative_accuracy": self.relative_accuracy,
                "duration": {
                    "p50_ms": durations.quantile(0.50),
                    "p95_ms": durations.quantile(0.95),
                    "p99_ms": durations.quantile(0.99),
                    "avg_ms": durations.avg(),
                    "relative_accuracy": self.relative_accuracy,
                },
                "cost": {
                    "total_usd": usage.cost_usd,
                    "avg_per_trace_usd": usage.cost_usd / self._traces,
                },
                "tokens": {
                    "input": usage.input_tokens,
                    "output": usage.output_tokens,
                    "cache_read": usage.cache_read_tokens,
                    "cache_write": usage.cache_write_tokens,
                    "reasoning": usage.reasoning_tokens,
                    "total": usage.total_tokens,
                },
                "llm_calls": usage.llm_calls,
                "unpriced_llm_calls": usage.unpriced_llm_calls,
                "no_usage_llm_calls": usage.no_usage_llm_calls,
                "estimated_llm_calls": usage.estimated_llm_calls,
                "cost_complete": usage.cost_complete,
                "span_distribution": dict(self._kind_counts),
                "by_model": _rollups(self._by_model),
                "by_agent": _rollups(self._by_agent),
                "by_user": {
                    k: {**v.to_dict(with_traces=True), "error_traces": self._errors_by_user[k]}
                    for k, v in self._by_user.items()
                },
                "by_session": _rollups(self._by_session),
                "slowest_traces": self._slowest.items(),
                "most_expensive_traces": self._costliest.items(),
                "metrics": metrics,
            }

    def get_latency_breakdown(self, by: Literal["kind", "name"] = "kind") -> list[dict[str, Any]]:
        """One row per stage: per span kind (default) or per (kind, span name).

        Rows are sorted by ``total_ms``, largest first. See the module docstring for what
        inclusive, total and self time mean.
        """
        if by not in ("kind", "name"):
            raise ValueError(f"by must be 'kind' or 'name', got {by!r}")
        self._drain()
        with self._lock:
            stages = self._by_kind.values() if by == "kind" else self._by_name.values()
            rows = [stage.to_row() for stage in stages]
        rows.sort(key=lambda r: (-r["total_ms"], r["stage"]))
        return rows

    def recent_traces(self, limit: int = 50) -> list[dict[str, Any]]:
        """Summaries of the most recent traces, newest first (at most ``recent_capacity``)."""
        self._drain()
        with self._lock:
            picked = list(itertools.islice(reversed(self._recent), max(0, limit)))
        return [dict(e) for e in picked]

    def slowest_traces(self) -> list[dict[str, Any]]:
        self._drain()
        with self._lock:
            return self._slowest.items()

    def most_expensive_traces(self) -> list[dict[str, Any]]:
        self._drain()
        with self._lock:
            return self._costliest.items()

    @property
    def trace_count(self) -> int:
        self._drain()
        return self._traces

    # -- internals -------------------------------------------------------------------
    def _total_traces(self) -> int:
        count = getattr(self._tracer, "trace_count", None)
        return count if isinstance(count, int) else self._traces

    def _collect_metrics(self) -> Any:
        if self._metrics is None:
            return []
        try:
            return self._metrics.collect()
        except Exception as exc:  # a broken metric must not take the dashboard down
            report("dashboard.metrics", exc)
            return []


def _rollups(table: dict[str, UsageRollup]) -> dict[str, dict[str, Any]]:
    return {k: v.to_dict(with_traces=True) for k, v in table.items()}
