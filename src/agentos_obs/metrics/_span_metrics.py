"""Default metrics fed by every finished span: a span processor writing to a MetricsRegistry.

Every number is read from the span's sealed record (:class:`~agentos_obs.tracing.SpanRecord`):
the processor derives nothing itself, so the metrics agree with cost analytics, the
dashboard, the store and the exports on calls, tokens, cost, models and agents.

Names follow Prometheus conventions (``promtool check metrics`` clean): base units (seconds,
USD), counters end in ``_total``, no unit abbreviations. With ``namespace="myapp"`` every
name below starts with ``myapp_`` (``myapp_llm_calls_total``...); the default is no prefix,
the prototype's names. The health counters ``agentos_obs_internal_errors_total`` and
``agentos_obs_dropped_total`` are namespaced already and never prefixed.

Metric (labels): what feeds it

- ``agent_invocations_total`` / ``agent_latency_seconds`` (agent): AGENT spans
- ``active_agents``: AGENT spans open now
- ``active_traces`` / ``traces_total``: the tracers' open / ended traces
- ``llm_calls_total`` (model, provider, status): counted LLM calls (``record.llm_call``);
  a failed call is a call (status ``error`` or ``timeout``)
- ``llm_calls_without_usage_total`` (model, provider): calls whose provider reported no
  usage (cost status ``no_usage``; failed calls mostly): their tokens and cost are unknown
  and are in no total below. Unknown is never shown as zero: divide by ``llm_calls_total``
  to see how much of the spend the totals leave out.
- ``llm_estimated_calls_total`` (model, provider): calls whose usage was estimated from
  the text and then priced (cost status ``estimated``); their tokens and cost ARE in the
  totals, this says how many of them are estimates
- ``llm_unpriced_calls_total`` (model, provider): calls with usage but no price for the
  model (cost status ``unpriced``): tokens counted, cost unknown
- ``llm_tokens_total`` (model, provider, type) / ``llm_token_usage`` (type input, output):
  calls whose usage counts (``record.counts_usage``: every call but ``no_usage`` ones)
- ``llm_cost_usd_total`` / ``llm_call_cost_usd`` (model, provider): calls with a known
  cost. The per-call histogram is not ``llm_cost_usd``: that is the metric family name of
  ``llm_cost_usd_total`` in OpenMetrics.
- ``llm_latency_seconds`` (model, provider): ``record.latency_ms`` (``llm.latency_ms``,
  else the LLM span's duration)
- ``llm_time_to_first_token_seconds`` (model, provider): ``record.time_to_first_token_ms``
- ``span_duration_seconds`` / ``span_errors_total`` (kind): every span / ERROR and TIMEOUT
- ``tool_calls_total`` / ``tool_errors_total`` (tool): TOOL spans (``tool.name``, else the
  span name) and ``tool_call`` events

Labels: ``model`` and ``provider`` are ``record.model`` / ``record.provider`` (``unknown``
when missing); ``agent`` is ``record.agent`` (an AGENT span's ``agent.name``, else its
name); ``type`` of ``llm_tokens_total`` is input (cache tokens included, OpenTelemetry GenAI
convention), output (reasoning included), cache_read, cache_write, reasoning.

Buckets: LLM latency and time to first token default to the OpenTelemetry GenAI boundaries
for ``gen_ai.client.operation.duration`` (:data:`GENAI_DURATION_BUCKETS`, 10 ms to
81.92 s): what GenAI dashboards expect, and fine-grained where most chat calls land. Calls
longer than 81.92 s (long reasoning, big batches) all fall in ``+Inf`` there: pass
``llm_latency_buckets=`` / ``llm_ttft_buckets=`` (for instance
:data:`SPAN_DURATION_BUCKETS`, up to 655.36 s).

Other rules:

* ``active_traces`` and ``traces_total`` are read from the tracers at scrape time (exact,
  including traces outliving their root span); tracers are found from the spans they start
  or given with ``tracer=``. They are process-local: in multi-process mode each worker's own
  registry serves them. ``active_agents`` is a ``livesum`` gauge and aggregates across
  processes.
* Latency and cost observations carry the trace id as an exemplar (OpenMetrics text),
  stamped with the call's end time.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence, Sized
from typing import TYPE_CHECKING

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics._batch import PendingCounter, PendingHistogram, SeriesBatch
from agentos_obs.metrics._buckets import GENAI_DURATION_BUCKETS
from agentos_obs.metrics._default_metrics import (
    DefaultMetrics,
    LLMSeries,
    check_duration_buckets,
    namespace_prefix,
)
from agentos_obs.metrics._registry import MetricsRegistry
from agentos_obs.tracing import CostStatus, SpanKind

if TYPE_CHECKING:
    from agentos_obs.tracing import Span, SpanRecord, Tracer

__all__ = ["SpanMetricsProcessor"]

_UNKNOWN = "unknown"
_OTHER = "other"  # label value once a label has max_label_values distinct values
_INF = math.inf
# Module constants: attribute access on an Enum class is slow enough to show on on_end.
_AGENT, _TOOL = SpanKind.AGENT, SpanKind.TOOL
_UNPRICED, _NO_USAGE, _ESTIMATED = CostStatus.UNPRICED, CostStatus.NO_USAGE, CostStatus.ESTIMATED


class SpanMetricsProcessor:
    """Span processor feeding the default metrics (see the module docstring) of ``registry``.

    ``tracer.add_span_processor(SpanMetricsProcessor(registry))``. One processor per
    registry and namespace; it may serve several tracers.

    * ``namespace``: prefix of every default metric's name (``myapp`` gives
      ``myapp_llm_calls_total``), for a process where another exporter already uses names
      such as ``traces_total`` or ``active_agents``. None (default): the prototype's names.
    * ``llm_latency_buckets`` / ``llm_ttft_buckets``: upper bounds in seconds of
      ``llm_latency_seconds`` and ``llm_time_to_first_token_seconds`` (strictly increasing,
      > 0, at most 64; ``+Inf`` is always added). Default :data:`GENAI_DURATION_BUCKETS`.
    * ``max_label_values`` bounds each label (agents, tools, model/provider pairs): further
      values are counted under ``other`` and the overflow is reported in
      ``agentos_obs_dropped_total{component="span_metrics.labels"}``. The default, 200,
      keeps the worst case of the model labels near 25k series (one model/provider pair is
      ~110 series, most of them histogram buckets).

    Bad arguments raise ConfigurationError here, at set-up. ``on_end`` runs on the caller's
    thread: it takes one lock and adds to plain numbers (:class:`~.metrics.SeriesBatch`);
    the registry applies them to prometheus_client before every read.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        tracer: Tracer | None = None,
        max_label_values: int = 200,
        namespace: str | None = None,
        llm_latency_buckets: Sequence[float] = GENAI_DURATION_BUCKETS,
        llm_ttft_buckets: Sequence[float] = GENAI_DURATION_BUCKETS,
    ) -> None:
        if not isinstance(registry, MetricsRegistry):
            raise ConfigurationError(f"expected a MetricsRegistry, got {registry!r}")
        if (
            not isinstance(max_label_values, int)
            or isinstance(max_label_values, bool)
            or max_label_values < 1
        ):
            raise ConfigurationError(f"max_label_values must be >= 1, got {max_label_values!r}")
        prefix = namespace_prefix(namespace)
        latency_buckets = check_duration_buckets("llm_latency_buckets", llm_latency_buckets)
        ttft_buckets = check_duration_buckets("llm_ttft_buckets", llm_ttft_buckets)
        self.registry = registry
        self.namespace = prefix[:-1] or None
        self.max_label_values = int(max_label_values)
        try:
            registry.gauge_function(
                f"{prefix}active_traces",
                "Traces started and not yet ended",
                self._active_trace_count,
            )
            registry.counter_function(
                f"{prefix}traces_total", "Traces ended", self._ended_trace_count
            )
        except ConfigurationError as exc:
            raise ConfigurationError(
                "this registry is already fed by a SpanMetricsProcessor: use one processor "
                "per registry (it can serve several tracers), or give each its own "
                f"namespace ({exc})"
            ) from exc
        self._m = DefaultMetrics(registry, prefix, latency_buckets, ttft_buckets)
        self._batch = SeriesBatch(registry)
        self._lock = threading.Lock()  # creating series; updates take the batch's lock
        self._tracers: weakref.WeakSet[Tracer] = weakref.WeakSet()
        self._last_tracer: Tracer | None = None
        self._open_agents: set[str] = set()
        self._active_agents = self._m.active_agents
        self._llm: dict[tuple[str, str], LLMSeries] = {}
        self._agents: dict[str, tuple[PendingCounter, PendingHistogram]] = {}
        self._tools: dict[str, tuple[PendingCounter, PendingCounter]] = {}
        counter, histogram = self._batch.counter, self._batch.histogram
        self._kinds = {
            kind: (
                histogram(self._m.span_duration.labels(kind=kind.value)),
                counter(self._m.span_errors.labels(kind=kind.value)),
            )
            for kind in SpanKind
        }
        if tracer is not None:
            self._see_tracer(tracer)

    def flush(self) -> None:
        """Apply pending updates now (reads of the registry do it themselves)."""
        self._batch.flush()

    # -- tracers (for active_traces / traces_total) ----------------------------------
    def _see_tracer(self, tracer: Tracer) -> None:
        self._last_tracer = tracer
        self._tracers.add(tracer)

    def _active_trace_count(self) -> float:
        return float(sum(t.active_trace_count for t in list(self._tracers)))

    def _ended_trace_count(self) -> float:
        # A tracer that is garbage collected leaves the sum: Prometheus sees a counter reset.
        return float(sum(t.trace_count for t in list(self._tracers)))

    # -- span processor --------------------------------------------------------------
    def on_start(self, span: Span) -> None:
        tracer = span.tracer
        if tracer is not self._last_tracer and tracer is not None:
            self._see_tracer(tracer)
        if span.kind is _AGENT:
            self._open_agents.add(span.span_id)
            self._active_agents.inc()

    def on_end(self, record: SpanRecord) -> None:
        kind = record.kind
        if kind is _AGENT and record.span_id in self._open_agents:
            # Only spans we saw start: attaching mid-run must not drive the gauge negative.
            self._open_agents.discard(record.span_id)
            self._active_agents.dec()
        failed = record.failed
        duration_s = record.duration_ms / 1000.0
        batch = self._batch
        with batch.lock:
            duration, errors = self._kinds[kind]
            duration.add(duration_s)
            if failed:
                errors.add()
            if kind is _AGENT:
                agent = record.agent or _UNKNOWN
                series = self._agents.get(agent) or self._agent_series(agent)
                series[0].add()
                series[1].add(duration_s)
            elif kind is _TOOL:
                self._count_tool(_tool_name(record), failed)
            if record.events:
                self._count_tool_events(record)
            if record.llm_call:
                self._count_llm_call(record)
        if batch.immediate:
            batch.flush()

    # -- per kind (called with the batch's lock held) --------------------------------
    def _count_llm_call(self, record: SpanRecord) -> None:
        key = (record.model or _UNKNOWN, record.provider or _UNKNOWN)
        series = self._llm.get(key) or self._llm_series(key)
        series.calls[record.status].add()
        exemplar = {"trace_id": record.trace_id}
        ended = record.end_time / 1e9  # the exemplars' time: when the call ended
        latency_ms = record.latency_ms
        if latency_ms is not None:
            series.latency.add(latency_ms / 1000.0, exemplar, ended)
        ttft_ms = record.time_to_first_token_ms
        if ttft_ms is not None:
            series.ttft.add(ttft_ms / 1000.0)

        cost_status = record.cost_status
        if cost_status is _NO_USAGE:  # not counts_usage: tokens and cost unknown, not 0
            series.no_usage.add()
            return
        usage = record.usage
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        tokens = series.tokens
        if input_tokens:
            tokens[0].add(input_tokens)
        if output_tokens:
            tokens[1].add(output_tokens)
        if usage.cache_read_tokens:
            tokens[2].add(usage.cache_read_tokens)
        if usage.cache_write_tokens:
            tokens[3].add(usage.cache_write_tokens)
        if usage.reasoning_tokens:
            tokens[4].add(usage.reasoning_tokens)
        series.usage_input.add(input_tokens)
        series.usage_output.add(output_tokens)
        if cost_status is _UNPRICED:
            series.unpriced.add()
            return
        if cost_status is _ESTIMATED:
            series.estimated.add()
        cost = record.cost_usd
        # The seal leaves only finite costs >= 0; a record built by hand might not.
        if cost is not None and 0.0 <= cost < _INF:
            series.cost_total.add(cost)
            series.cost.add(cost, exemplar, ended)

    def _count_tool_events(self, record: SpanRecord) -> None:
        # Tracer.record_tool_call with no current span makes a TOOL span carrying its own
        # tool_call event: that event is the span, already counted.
        own_tool = _tool_name(record) if record.kind is _TOOL else None
        for event in record.events:
            if event.name != "tool_call":
                continue
            tool = str(event.attributes.get("tool_name") or _UNKNOWN)
            if tool == own_tool:
                own_tool = None
                continue
            self._count_tool(tool, not event.attributes.get("success", True))

    def _count_tool(self, tool: str, failed: bool) -> None:
        series = self._tools.get(tool) or self._tool_series(tool)
        series[0].add()
        if failed:
            series[1].add()

    # -- label caches (bounded) ------------------------------------------------------
    def _bounded(self, table: Sized) -> bool:
        if len(table) < self.max_label_values:
            return True
        _guard.count_drop("span_metrics.labels", reason="max_label_values reached")
        return False

    def _agent_series(self, name: str) -> tuple[PendingCounter, PendingHistogram]:
        with self._lock:
            if name not in self._agents and not self._bounded(self._agents):
                name = _OTHER
            series = self._agents.get(name)
            if series is None:
                series = (
                    self._batch.counter(self._m.agent_invocations.labels(agent=name)),
                    self._batch.histogram(self._m.agent_latency.labels(agent=name)),
                )
                self._agents[name] = series
            return series

    def _tool_series(self, tool: str) -> tuple[PendingCounter, PendingCounter]:
        with self._lock:
            if tool not in self._tools and not self._bounded(self._tools):
                tool = _OTHER
            series = self._tools.get(tool)
            if series is None:
                series = (
                    self._batch.counter(self._m.tool_calls.labels(tool=tool)),
                    self._batch.counter(self._m.tool_errors.labels(tool=tool)),
                )
                self._tools[tool] = series
            return series

    def _llm_series(self, key: tuple[str, str]) -> LLMSeries:
        with self._lock:
            if key not in self._llm and not self._bounded(self._llm):
                key = (_OTHER, _OTHER)
            series = self._llm.get(key)
            if series is None:
                series = LLMSeries(self._m, self._batch, *key)
                self._llm[key] = series
            return series


def _tool_name(record: SpanRecord) -> str:
    return str(record.attributes.get(attr.TOOL_NAME) or record.name or _UNKNOWN)
