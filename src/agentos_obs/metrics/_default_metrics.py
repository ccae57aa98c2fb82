"""The default span metrics' families, registered under an optional namespace, and the
series of one model/provider pair; the validation of the processor's options."""

from __future__ import annotations

from collections.abc import Sequence

from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics._batch import SeriesBatch
from agentos_obs.metrics._buckets import (
    GENAI_TOKEN_BUCKETS,
    LLM_COST_USD_BUCKETS,
    SPAN_DURATION_BUCKETS,
    check_buckets,
)
from agentos_obs.metrics._registry import MetricsRegistry
from agentos_obs.tracing import SpanStatus

__all__ = [
    "MAX_DURATION_BUCKETS",
    "TOKEN_TYPES",
    "DefaultMetrics",
    "LLMSeries",
    "check_duration_buckets",
    "namespace_prefix",
]

TOKEN_TYPES: tuple[str, ...] = ("input", "output", "cache_read", "cache_write", "reasoning")
# Each bound is a series per model/provider pair in two histograms: keep the count sane.
MAX_DURATION_BUCKETS = 64


class LLMSeries:
    """Every series of one (model, provider), resolved once: on_end does no label work."""

    __slots__ = (
        "calls",
        "cost",
        "cost_total",
        "estimated",
        "latency",
        "no_usage",
        "tokens",
        "ttft",
        "unpriced",
        "usage_input",
        "usage_output",
    )

    def __init__(
        self, metrics: DefaultMetrics, batch: SeriesBatch, model: str, provider: str
    ) -> None:
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
        self.no_usage = counter(metrics.llm_no_usage.labels(**labels))
        self.estimated = counter(metrics.llm_estimated.labels(**labels))
        self.latency = histogram(metrics.llm_latency.labels(**labels))
        self.ttft = histogram(metrics.llm_ttft.labels(**labels))


class DefaultMetrics:
    """The default metrics, registered in one registry under one namespace."""

    def __init__(
        self,
        registry: MetricsRegistry,
        prefix: str,
        latency_buckets: tuple[float, ...],
        ttft_buckets: tuple[float, ...],
    ) -> None:
        r, p = registry, prefix
        self.agent_invocations = r.counter(
            f"{p}agent_invocations_total", "Agent runs (AGENT spans) that ended", ("agent",)
        )
        self.agent_latency = r.histogram(
            f"{p}agent_latency_seconds", "Duration of agent runs", SPAN_DURATION_BUCKETS, ("agent",)
        )
        self.active_agents = r.gauge(f"{p}active_agents", "Agent runs (AGENT spans) open now")
        llm = ("model", "provider")
        self.llm_calls = r.counter(f"{p}llm_calls_total", "LLM calls by outcome", (*llm, "status"))
        self.llm_no_usage = r.counter(
            f"{p}llm_calls_without_usage_total",
            "LLM calls whose provider reported no usage: tokens and cost unknown, not zero",
            llm,
        )
        self.llm_estimated = r.counter(
            f"{p}llm_estimated_calls_total",
            "LLM calls whose usage was estimated from the text, then priced",
            llm,
        )
        self.llm_tokens = r.counter(
            f"{p}llm_tokens_total",
            "LLM tokens by type: input (cache included), output (reasoning included), "
            "cache_read, cache_write, reasoning",
            (*llm, "type"),
        )
        self.llm_token_usage = r.histogram(
            f"{p}llm_token_usage",
            "Tokens per LLM call (OpenTelemetry gen_ai.client.token.usage)",
            GENAI_TOKEN_BUCKETS,
            (*llm, "type"),
        )
        self.llm_cost_total = r.counter(
            f"{p}llm_cost_usd_total", "Cost of priced LLM calls in US dollars", llm
        )
        self.llm_cost = r.histogram(
            f"{p}llm_call_cost_usd",
            "Cost per priced LLM call in US dollars",
            LLM_COST_USD_BUCKETS,
            llm,
        )
        self.llm_unpriced = r.counter(
            f"{p}llm_unpriced_calls_total", "LLM calls whose model has no known price", llm
        )
        self.llm_latency = r.histogram(
            f"{p}llm_latency_seconds",
            "LLM call duration (OpenTelemetry gen_ai.client.operation.duration)",
            latency_buckets,
            llm,
        )
        self.llm_ttft = r.histogram(
            f"{p}llm_time_to_first_token_seconds",
            "Time to the first streamed token of an LLM call",
            ttft_buckets,
            llm,
        )
        self.span_duration = r.histogram(
            f"{p}span_duration_seconds",
            "Duration of spans by kind",
            SPAN_DURATION_BUCKETS,
            ("kind",),
        )
        self.span_errors = r.counter(
            f"{p}span_errors_total", "Spans that ended in error or timed out, by kind", ("kind",)
        )
        self.tool_calls = r.counter(f"{p}tool_calls_total", "Tool calls", ("tool",))
        self.tool_errors = r.counter(f"{p}tool_errors_total", "Tool calls that failed", ("tool",))


def namespace_prefix(namespace: object) -> str:
    """The name prefix for ``namespace`` ("" for none)."""
    if namespace is None or namespace == "":
        return ""
    if (
        not isinstance(namespace, str)
        or not namespace.isascii()
        or not (namespace[0].isalpha() or namespace[0] == "_")
        or not all(c.isalnum() or c == "_" for c in namespace)
        or namespace.endswith("_")
    ):
        raise ConfigurationError(
            f"namespace must be letters, digits and '_', not starting with a digit nor "
            f"ending with '_' (it is joined to the names with one '_'), got {namespace!r}"
        )
    return f"{namespace}_"


def check_duration_buckets(argument: str, buckets: object) -> tuple[float, ...]:
    if buckets is None or isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence):
        raise ConfigurationError(f"{argument} must be a sequence of seconds, got {buckets!r}")
    if any(isinstance(b, bool) for b in buckets):
        raise ConfigurationError(f"{argument}: bucket bounds must be numbers, got {buckets!r}")
    bounds = check_buckets(argument, buckets)
    if bounds[0] <= 0:
        raise ConfigurationError(f"{argument}: bounds are durations > 0 s, got {bounds[0]!r}")
    if len(bounds) > MAX_DURATION_BUCKETS:
        raise ConfigurationError(
            f"{argument}: at most {MAX_DURATION_BUCKETS} bounds (each is a series per "
            f"model/provider pair), got {len(bounds)}"
        )
    return bounds
