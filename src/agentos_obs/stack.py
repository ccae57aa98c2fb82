"""The observability stack: a tracer wired to metrics, logs, dashboard and cost analytics.

``create_observability_stack`` builds one; ``get_stack()`` is the process-wide default that
integrations report to when given no tracer, and ``configure(...)`` sets it up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentos_obs._internal.guard import report
from agentos_obs.cost import BudgetAlert, CostAnalytics
from agentos_obs.cost._budget_metrics import budget_metrics
from agentos_obs.cost._budgets import check_ledger_move
from agentos_obs.dashboard import ObservabilityDashboard
from agentos_obs.errors import ConfigurationError
from agentos_obs.logs import StructuredLogger
from agentos_obs.metrics import GENAI_DURATION_BUCKETS, MetricsRegistry, SpanMetricsProcessor
from agentos_obs.pricing import PriceCatalog
from agentos_obs.tracing import Tracer, TracerConfig

__all__ = [
    "ObservabilityStack",
    "configure",
    "create_observability_stack",
    "get_stack",
    "get_tracer",
    "reset_stack",
]


class ObservabilityStack(tuple[Tracer, MetricsRegistry, StructuredLogger, ObservabilityDashboard]):
    """``(tracer, metrics, logger, dashboard)`` — unpacks like the prototype's tuple — plus
    the parts added since as attributes (``cost``, ``span_metrics``, ``budgets``, ``store``,
    ``otlp``, ``metrics_server``).

    A subclass of the fixed-length tuple type, so type checkers see each of the four: after
    ``tracer, metrics, logger, dashboard = create_observability_stack()`` a call such as
    ``tracer.record_llm_call(input_tokens="10")`` is a type error, not ``Any``."""

    tracer: Tracer
    metrics: MetricsRegistry
    logger: StructuredLogger
    dashboard: ObservabilityDashboard
    cost: CostAnalytics
    span_metrics: SpanMetricsProcessor
    budgets: list[BudgetAlert]
    budget_ledger: str | None
    store: Any
    otlp: Any
    metrics_server: Any
    metrics_port: int | None

    def __new__(
        cls,
        tracer: Tracer,
        metrics: MetricsRegistry,
        logger: StructuredLogger,
        dashboard: ObservabilityDashboard,
        **extra: Any,
    ) -> ObservabilityStack:
        self = super().__new__(cls, (tracer, metrics, logger, dashboard))
        self.tracer = tracer
        self.metrics = metrics
        self.logger = logger
        self.dashboard = dashboard
        self.cost = extra.pop("cost")
        self.span_metrics = extra.pop("span_metrics")
        self.budgets = []
        self.budget_ledger = None
        self.store = None
        self.otlp = None
        self.metrics_server = None
        self.metrics_port = None
        return self

    def add_budget(self, budget: BudgetAlert) -> BudgetAlert:
        """Attach a budget: fed from finished LLM spans, checked at each LLM span start; on
        the stack's ``budget_ledger`` unless it was given its own ``ledger=``."""
        if not isinstance(budget, BudgetAlert):
            raise ConfigurationError(f"expected a BudgetAlert, got {budget!r}")
        if self.budget_ledger is not None and budget.ledger_set_by_stack:
            budget.use_ledger(self.budget_ledger, from_stack=True)
        if budget not in self.budgets:
            self.budgets.append(budget)
            self.tracer.add_span_processor(budget)
            budget_metrics(self.metrics).add(budget)
        return budget

    def shutdown(self) -> None:
        """Flush and close exporters, then stop the metrics server if one was started."""
        self.tracer.shutdown()
        if self.metrics_server is not None:
            try:
                self.metrics.stop()
            except Exception as exc:
                report("metrics_server.stop", exc)
            self.metrics_server = None


def create_observability_stack(
    service_name: str = "agentos",
    *,
    config: TracerConfig | None = None,
    pricing: PriceCatalog | None = None,
    metrics_namespace: str | None = None,
    llm_latency_buckets: Sequence[float] = GENAI_DURATION_BUCKETS,
    llm_ttft_buckets: Sequence[float] = GENAI_DURATION_BUCKETS,
) -> ObservabilityStack:
    """One call: tracer, metrics registry (default metrics fed by every span), structured
    logger, dashboard and cost analytics, wired together.

    ``metrics_namespace`` prefixes the default metrics (``myapp_llm_calls_total``) so they
    cannot collide with another exporter's in the same process; the bucket arguments replace
    the OpenTelemetry GenAI boundaries (10 ms to 81.92 s) of LLM latency and time to first
    token, e.g. with ``agentos_obs.metrics.SPAN_DURATION_BUCKETS`` (up to 655 s) for long
    reasoning calls."""
    metrics = MetricsRegistry()
    tracer = Tracer(service_name, config=config, pricing=pricing)
    span_metrics = SpanMetricsProcessor(
        metrics,
        tracer=tracer,
        namespace=metrics_namespace,
        llm_latency_buckets=llm_latency_buckets,
        llm_ttft_buckets=llm_ttft_buckets,
    )
    tracer.add_span_processor(span_metrics)
    logger = StructuredLogger(tracer)
    dashboard = ObservabilityDashboard(tracer, metrics)
    tracer.add_exporter(dashboard.record_trace)
    cost = CostAnalytics()
    tracer.add_span_processor(cost)
    return ObservabilityStack(
        tracer, metrics, logger, dashboard, cost=cost, span_metrics=span_metrics
    )


_default: ObservabilityStack | None = None
_default_lock = threading.Lock()


def get_stack() -> ObservabilityStack:
    """The process-wide default stack, created on first use."""
    global _default
    stack = _default
    if stack is not None:
        return stack
    with _default_lock:
        if _default is None:
            name = os.environ.get("OTEL_SERVICE_NAME") or "agentos"
            _default = create_observability_stack(name)
        return _default


def get_tracer() -> Tracer:
    """The default stack's tracer (what integrations use when given no tracer)."""
    return get_stack().tracer


def reset_stack() -> None:
    """Shut the default stack down and forget it (tests, or re-configuring from scratch)."""
    global _default
    with _default_lock:
        stack, _default = _default, None
    if stack is not None:
        stack.shutdown()


def configure(
    *,
    service_name: str | None = None,
    exporters: Iterable[Any] = (),
    price_overrides: Mapping[str, Mapping[str, float]] | str | os.PathLike[str] | None = None,
    model_aliases: Mapping[str, str] | None = None,
    capture_content: bool | None = None,
    max_content_length: int | None = None,
    sampling_ratio: float | None = None,
    budgets: Iterable[BudgetAlert] = (),
    budget_ledger: str | None = None,
    store: bool | str | os.PathLike[str] | Any = None,
    otlp: bool | Mapping[str, Any] | Any = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> ObservabilityStack:
    """Set up the default stack (created if needed; changed in place otherwise, so handlers
    already attached keep reporting to it). Bad arguments raise ConfigurationError before
    anything is changed.

    ``budget_ledger`` ("memory", "sqlite:///PATH", "redis://HOST:PORT/DB") is where the
    budgets keep their spend: those given here, those attached before and after, except a
    budget built with its own ``ledger=``."""
    stack = get_stack()
    tracer = stack.tracer
    old = tracer.config
    new_config = TracerConfig(
        service_name=service_name if service_name is not None else old.service_name,
        capture_content=capture_content if capture_content is not None else old.capture_content,
        max_content_length=(
            max_content_length if max_content_length is not None else old.max_content_length
        ),
        sampling_ratio=sampling_ratio if sampling_ratio is not None else old.sampling_ratio,
    )
    exporters = list(exporters)
    for exporter in exporters:
        if not callable(exporter) and not callable(getattr(exporter, "export", None)):
            raise ConfigurationError(f"exporter must be fn(trace) or have export(): {exporter!r}")
    budgets = list(budgets)
    for budget in budgets:
        if not isinstance(budget, BudgetAlert):
            raise ConfigurationError(f"budgets must be BudgetAlert objects, got {budget!r}")
    if budget_ledger is not None:  # a bad URL or clashing names raise here, before any change
        moving = [b for b in [*stack.budgets, *budgets] if b.ledger_set_by_stack]
        check_ledger_move(budget_ledger, list(dict.fromkeys(moving)))
    new_pricing: PriceCatalog | None = None
    if price_overrides is not None or model_aliases is not None:
        new_pricing = PriceCatalog(overrides=price_overrides, aliases=model_aliases)

    new_store = _make_store(store) if store not in (None, False) else None
    new_otlp = _make_otlp(otlp) if otlp not in (None, False) else None

    tracer.config = new_config
    if new_pricing is not None:
        tracer.pricing = new_pricing
    for exporter in exporters:
        tracer.add_exporter(exporter)
    if budget_ledger is not None:
        stack.budget_ledger = budget_ledger
        for budget in stack.budgets:
            if budget.ledger_set_by_stack:
                budget.use_ledger(budget_ledger, from_stack=True)
    for budget in budgets:
        stack.add_budget(budget)
    if new_store is not None:
        if stack.store is not None:
            tracer.remove_exporter(stack.store)
            stack.store.close()
        stack.store = new_store
        tracer.add_exporter(new_store)
    if new_otlp is not None:
        if stack.otlp is not None:
            tracer.remove_exporter(stack.otlp)
            stack.otlp.shutdown()
        stack.otlp = new_otlp
        tracer.add_exporter(new_otlp)
    if metrics_port is not None and stack.metrics_server is None:
        server, port = stack.metrics.start_http_server(port=metrics_port, addr=metrics_host)
        stack.metrics_server = server
        stack.metrics_port = port
    return stack


def _make_store(store: Any) -> Any:
    from agentos_obs.store._writer import SQLiteStore, default_db_path

    if store is True:
        return SQLiteStore(default_db_path())
    if isinstance(store, (str, os.PathLike)):
        return SQLiteStore(store)
    if callable(getattr(store, "export", None)) or callable(store):
        return store
    raise ConfigurationError(f"store must be True, a path or a SQLiteStore, got {store!r}")


def _make_otlp(otlp: Any) -> Any:
    try:
        from agentos_obs.exporters.otlp import OTLPExporter
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ConfigurationError(
            "otlp=True needs the OpenTelemetry extra: pip install 'agentos-obs[otel]'"
        ) from exc
    if otlp is True:
        return OTLPExporter()
    if isinstance(otlp, Mapping):
        return OTLPExporter(**otlp)
    if callable(getattr(otlp, "export", None)) or callable(otlp):
        return otlp
    raise ConfigurationError(
        f"otlp must be True, a dict of OTLPExporter options or an exporter, got {otlp!r}"
    )
