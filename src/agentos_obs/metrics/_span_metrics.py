"""Default metrics fed by every finished span: a span processor writing to a MetricsRegistry.

Names follow Prometheus conventions (``promtool check metrics`` clean): base units (seconds,
USD), counters end in ``_total``, no unit abbreviations.

Metric (labels): what feeds it

- ``agent_invocations_total`` / ``agent_latency_seconds`` (agent): AGENT spans
- ``active_agents``: AGENT spans open now
- ``active_traces`` / ``traces_total``: the tracers' open / ended traces
- ``llm_calls_total`` (model, provider, status): LLM calls, see below
- ``llm_latency_seconds`` (model, provider): ``llm.latency_ms``, else the LLM span duration
- ``llm_time_to_first_token_seconds`` (model, provider): ``llm.time_to_first_token_ms``
- ``llm_tokens_total`` (model, provider, type) / ``llm_token_usage`` (type input, output):
  usage spans
- ``llm_cost_usd_total`` / ``llm_call_cost_usd`` / ``llm_unpriced_calls_total`` (model,
  provider): priced / unpriced usage spans. The per-call histogram is not ``llm_cost_usd``:
  that is the metric family name of ``llm_cost_usd_total`` in OpenMetrics.
- ``span_duration_seconds`` / ``span_errors_total`` (kind): every span / ERROR and TIMEOUT
- ``tool_calls_total`` / ``tool_errors_total`` (tool): TOOL spans and ``tool_call`` events

Counting rules:

* Usage (tokens, cost, unpriced) comes only from spans whose usage counts
  (``span.counts_usage``: the innermost span carrying it), so nothing is counted twice.
* An LLM call is a span whose usage counts, or an LLM span with neither usage below it nor an
  LLM child (a failed call has no usage but is still a call; LlamaIndex's ``achat › chat``
  double spans count once).
* ``type`` of ``llm_tokens_total``: input (cache tokens included, OpenTelemetry GenAI
  convention), output (reasoning included), cache_read, cache_write, reasoning.
* ``active_traces`` and ``traces_total`` are read from the tracers at scrape time (exact,
  including traces outliving their root span); tracers are found from the spans they start
  or given with ``tracer=``. They are process-local: in multi-process mode each worker's own
  registry serves them. ``active_agents`` is a ``livesum`` gauge and aggregates across
  processes.
* Latency and cost observations carry the trace id as an exemplar (OpenMetrics text).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sized
from typing import TYPE_CHECKING

import agentos_obs._internal.guard as _guard
import agentos_obs.attributes as attr
from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics._batch import PendingCounter, PendingHistogram, SeriesBatch
from agentos_obs.metrics._buckets import (
    GENAI_DURATION_BUCKETS,
    GENAI_TOKEN_BUCKETS,
    LLM_COST_USD_BUCKETS,
    SPAN_DURATION_BUCKETS,
)
from agentos_obs.metrics._registry import MetricsRegistry
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["TOKEN_TYPES", "SpanMetricsProcessor"]

TOKEN_TYPES: tuple[str, ...] = ("input", "output", "cache_read", "cache_write", "reasoning")

_UNKNOWN = "unknown"
_OTHER = "other"  # label value once a label has max_label_values distinct values
_FAILED = (SpanStatus.ERROR, SpanStatus.TIMEOUT)  # CANCELLED is not a failure of the app
# Module constants: attribute access on an Enum class is slow enough to show on on_end.
_AGENT, _LLM, _TOOL = SpanKind.AGENT, SpanKind.LLM, SpanKind.TOOL


class _LLMSeries:
    """Every series of one (model, provider), resolved once: on_end does no label work."""

    __slots__ = (
        "calls",
        "cost",
        "cost_total",
        "latency",
        "tokens",
        "ttft",
        "unpriced",
        "usage_input",
        "usage_output",
    )

    def __init__(self, metrics: _Metrics, batch: SeriesBatch, model: str, provider: str) -> None:
        labels = {"model": model, "provider": provider}
        counter, histogram = batch.counter, batch.histogram
        self.calls = {
            status: counter(metrics.llm_calls.labels(**labels, status=status.value))
            for status in SpanStatus
        }
        self.tokens = tuple(
            counter(metrics.llm_tokens.labels(**labels, type=t)) for t in TOKEN_TYPES
        )
        self.usage_input = histogram(metrics.llm_token_usage.labels(**labels, type="input"))
        self.usage_output = histogram(metrics.llm_token_usage.labels(**labels, type="output"))
        self.cost_total = counter(metrics.llm_cost_total.labels(**labels))
        self.cost = histogram(metrics.llm_cost.labels(**labels))
        self.unpriced = counter(metrics.llm_unpriced.labels(**labels))
        self.latency = histogram(metrics.llm_latency.labels(**labels))
        self.ttft = histogram(metrics.llm_ttft.labels(**labels))


class _Metrics:
    """The default metrics, registered in one registry."""

    def __init__(self, registry: MetricsRegistry) -> None:
        r = registry
        self.agent_invocations = r.counter(
            "agent_invocations_total", "Agent runs (AGENT spans) that ended", ("agent",)
        )
        self.agent_latency = r.histogram(
            "agent_latency_seconds", "Duration of agent runs", SPAN_DURATION_BUCKETS, ("agent",)
        )
        self.active_agents = r.gauge("active_agents", "Agent runs (AGENT spans) open now")
        llm = ("model", "provider")
        self.llm_calls = r.counter("llm_calls_total", "LLM calls by outcome", (*llm, "status"))
        self.llm_tokens = r.counter(
            "llm_tokens_total",
            "LLM tokens by type: input (cache included), output (reasoning included), "
            "cache_read, cache_write, reasoning",
            (*llm, "type"),
        )
        self.llm_token_usage = r.histogram(
            "llm_token_usage",
            "Tokens per LLM call (OpenTelemetry gen_ai.client.token.usage)",
            GENAI_TOKEN_BUCKETS,
            (*llm, "type"),
        )
        self.llm_cost_total = r.counter(
            "llm_cost_usd_total", "Cost of priced LLM calls in US dollars", llm
        )
        self.llm_cost = r.histogram(
            "llm_call_cost_usd", "Cost per priced LLM call in US dollars", LLM_COST_USD_BUCKETS, llm
        )
        self.llm_unpriced = r.counter(
            "llm_unpriced_calls_total", "LLM calls whose model has no known price", llm
        )
        self.llm_latency = r.histogram(
            "llm_latency_seconds",
            "LLM call duration (OpenTelemetry gen_ai.client.operation.duration)",
            GENAI_DURATION_BUCKETS,
            llm,
        )
        self.llm_ttft = r.histogram(
            "llm_time_to_first_token_seconds",
            "Time to the first streamed token of an LLM call",
            GENAI_DURATION_BUCKETS,
            llm,
        )
        self.span_duration = r.histogram(
            "span_duration_seconds", "Duration of spans by kind", SPAN_DURATION_BUCKETS, ("kind",)
        )
        self.span_errors = r.counter(
            "span_errors_total", "Spans that ended in error or timed out, by kind", ("kind",)
        )
        self.tool_calls = r.counter("tool_calls_total", "Tool calls", ("tool",))
        self.tool_errors = r.counter("tool_errors_total", "Tool calls that failed", ("tool",))


class SpanMetricsProcessor:
    """Span processor feeding the default metrics (see the module docstring) of ``registry``.

    ``tracer.add_span_processor(SpanMetricsProcessor(registry))``. One processor per
    registry; it may serve several tracers. ``max_label_values`` bounds each label
    (agents, tools, model/provider pairs): further values are counted under ``other`` and
    the overflow is reported in ``agentos_obs_dropped_total{component="span_metrics.labels"}``.
    The default, 200, keeps the worst case of the model labels near 25k series (one
    model/provider pair is ~110 series, most of them histogram buckets).

    ``on_end`` takes one lock and adds to plain numbers (:class:`~.metrics.SeriesBatch`);
    the registry applies them to prometheus_client before every read.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        tracer: Tracer | None = None,
        max_label_values: int = 200,
    ) -> None:
        if not isinstance(registry, MetricsRegistry):
            raise ConfigurationError(f"expected a MetricsRegistry, got {registry!r}")
        if (
            not isinstance(max_label_values, int)
            or isinstance(max_label_values, bool)
            or max_label_values < 1
        ):
            raise ConfigurationError(f"max_label_values must be >= 1, got {max_label_values!r}")
        self.registry = registry
        self.max_label_values = int(max_label_values)
        try:
            registry.gauge_function(
                "active_traces", "Traces started and not yet ended", self._active_trace_count
            )
            registry.counter_function("traces_total", "Traces ended", self._ended_trace_count)
        except ConfigurationError as exc:
            raise ConfigurationError(
                "this registry is already fed by a SpanMetricsProcessor: use one processor "
                f"per registry (it can serve several tracers) ({exc})"
            ) from exc
        self._m = _Metrics(registry)
        self._batch = SeriesBatch(registry)
        self._lock = threading.Lock()  # creating series; updates take the batch's lock
        self._tracers: weakref.WeakSet[Tracer] = weakref.WeakSet()
        self._last_tracer: Tracer | None = None
        self._open_agents: set[str] = set()
        self._active_agents = self._m.active_agents
        self._llm: dict[tuple[str, str], _LLMSeries] = {}
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
        tracer = span._tracer
        if tracer is not self._last_tracer and tracer is not None:
            self._see_tracer(tracer)
        if span.kind is _AGENT:
            self._open_agents.add(span.span_id)
            self._active_agents.inc()

    def on_end(self, span: Span) -> None:
        kind = span.kind
        if kind is _AGENT and span.span_id in self._open_agents:
            # Only spans we saw start: attaching mid-run must not drive the gauge negative.
            self._open_agents.discard(span.span_id)
            self._active_agents.dec()
        failed = span.status in _FAILED
        duration_s = span.duration_ms / 1000.0
        batch = self._batch
        with batch.lock:
            duration, errors = self._kinds[kind]
            duration.add(duration_s)
            if failed:
                errors.add()
            if kind is _AGENT:
                name = str(span.attributes.get(attr.AGENT_NAME) or span.name or _UNKNOWN)
                agent = self._agents.get(name) or self._agent_series(name)
                agent[0].add()
                agent[1].add(duration_s)
            elif kind is _TOOL:
                tool = str(span.attributes.get(attr.TOOL_NAME) or span.name or _UNKNOWN)
                self._count_tool(tool, failed)
            if span.events:
                self._count_tool_events(span)
            # Usage counts only on the innermost span carrying it; an LLM span without
            # usage (a failed call) is a call unless an LLM child already is one.
            counts_usage = span.counts_usage
            if counts_usage or (
                kind is _LLM
                and not span._shadowed
                and not any(child.kind is _LLM for child in span.children)
            ):
                self._count_llm_call(span, counts_usage, duration_s)
        if batch.immediate:
            batch.flush()

    # -- per kind (called with the batch's lock held) --------------------------------
    def _count_llm_call(self, span: Span, counts_usage: bool, duration_s: float) -> None:
        key = (span.model_name or _UNKNOWN, span.provider or _UNKNOWN)
        series = self._llm.get(key) or self._llm_series(key)
        series.calls[span.status].add()
        exemplar = {"trace_id": span.trace_id}

        attributes = span.attributes
        latency_ms = attributes.get(attr.LLM_LATENCY_MS)  # measured by the caller
        latency_s = None if latency_ms is None else _seconds(latency_ms)
        if latency_s is None and span.kind is _LLM:  # another kind's duration is not the call's
            latency_s = duration_s
        if latency_s is not None:
            series.latency.add(latency_s, exemplar)
        ttft_ms = attributes.get(attr.LLM_TIME_TO_FIRST_TOKEN_MS)
        if ttft_ms is not None:
            ttft_s = _seconds(ttft_ms)
            if ttft_s is not None:
                series.ttft.add(ttft_s)

        if not counts_usage:
            return
        # Token fields are ints >= 0 (Tracer.record_usage clamps them).
        input_tokens, output_tokens = span.input_tokens, span.output_tokens
        tokens = series.tokens
        if input_tokens:
            tokens[0].add(input_tokens)
        if output_tokens:
            tokens[1].add(output_tokens)
        if span.cache_read_tokens:
            tokens[2].add(span.cache_read_tokens)
        if span.cache_write_tokens:
            tokens[3].add(span.cache_write_tokens)
        if span.reasoning_tokens:
            tokens[4].add(span.reasoning_tokens)
        series.usage_input.add(input_tokens)
        series.usage_output.add(output_tokens)
        cost = span.cost_usd
        if cost is not None and 0.0 <= cost < math.inf:
            series.cost_total.add(cost)
            series.cost.add(cost, exemplar)
        else:  # no price (or a nonsense one: negative, NaN)
            series.unpriced.add()

    def _count_tool_events(self, span: Span) -> None:
        # Tracer.record_tool_call with no current span makes a TOOL span carrying its own
        # tool_call event: that event is the span, already counted.
        own_tool = (
            str(span.attributes.get(attr.TOOL_NAME) or span.name) if span.kind is _TOOL else None
        )
        for event in span.events:
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

    def _llm_series(self, key: tuple[str, str]) -> _LLMSeries:
        with self._lock:
            if key not in self._llm and not self._bounded(self._llm):
                key = (_OTHER, _OTHER)
            series = self._llm.get(key)
            if series is None:
                series = _LLMSeries(self._m, self._batch, *key)
                self._llm[key] = series
            return series


def _seconds(milliseconds: object) -> float | None:
    """A duration attribute in ms as seconds; None when absent or not a finite number >= 0."""
    if milliseconds is None or isinstance(milliseconds, bool):
        return None
    try:
        value = float(milliseconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value / 1000.0 if 0.0 <= value < math.inf else None
