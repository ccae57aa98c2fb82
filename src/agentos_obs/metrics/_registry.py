"""The metrics registry: the prototype's registry API on top of ``prometheus_client``.

``prometheus_client`` does the real work: values (in-process, or in files under
``PROMETHEUS_MULTIPROC_DIR`` in multi-process mode), the text and OpenMetrics exposition
(HELP, escaping, cumulative buckets, ``+Inf``, ``_sum``/``_count``, exemplars) and the
``/metrics`` server, all through its public API. This module adds what the prototype
promised on top:

* one registry object per stack (never the global ``REGISTRY``), where asking for a name
  again returns the same metric and asking for it as another type is a clear error;
* labels as keyword arguments, with children cached per label values
  (:mod:`~agentos_obs.metrics._instruments`);
* readable values (``counter.value``, ``histogram.buckets``...) and the prototype's
  ``collect()`` list of dicts;
* ``agentos_obs_internal_errors_total`` / ``agentos_obs_dropped_total`` in every registry,
  so the failures the library swallows to protect the app are visible on a dashboard;
* collect hooks, run before every read, for writers that batch their updates
  (:class:`~agentos_obs.metrics.SeriesBatch`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry

import agentos_obs._internal.guard as _guard
from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics._buckets import check_buckets
from agentos_obs.metrics._collectors import CallbackCollector, CollectHooks, InternalHealthCollector
from agentos_obs.metrics._exposition import MetricsServer, openmetrics_text, prometheus_text
from agentos_obs.metrics._instruments import Counter, Gauge, Histogram, Metric, MetricType
from agentos_obs.metrics._multiprocess import GAUGE_MULTIPROCESS_MODES

__all__ = ["MetricsCollector", "MetricsRegistry"]

# Classic Prometheus names. prometheus_client also accepts UTF-8 names (Prometheus 3), but
# older servers, promtool and most dashboards do not: refuse them at set-up time.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Keyword names our methods take besides labels: a label of that name could not be passed.
_RESERVED_LABELS = frozenset({"amount", "value", "exemplar"})


def _counter_name(name: str) -> str:
    return name if name.endswith("_total") else f"{name}_total"


class MetricsRegistry:
    """Prometheus-style registry of counters, gauges and histograms.

    Usage::

        registry = MetricsRegistry()
        calls = registry.counter("llm_calls_total", "LLM calls", labelnames=("model",))
        calls.inc(model="gpt-4o")
        latency = registry.histogram("llm_latency_seconds", "LLM latency", GENAI_DURATION_BUCKETS)
        latency.observe(1.23)
        print(registry.to_prometheus_text())

    Each registry owns a fresh ``prometheus_client.CollectorRegistry``
    (:attr:`prometheus_registry`), so two stacks (or two tests) never share values.
    """

    def __init__(self) -> None:
        self.prometheus_registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Metric[Any]] = {}
        self._callbacks: dict[str, CallbackCollector] = {}
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._server = MetricsServer(self.prometheus_registry)
        # Registered first: prometheus_client collects in registration order, so batched
        # updates are applied before any metric is read by a scrape of this registry.
        self.prometheus_registry.register(CollectHooks(self))
        self.prometheus_registry.register(InternalHealthCollector())

    def add_collect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` before every read (scrape, exposition, ``collect()``, ``.value``).

        For writers that batch updates (see :class:`SeriesBatch`): the hook applies them.
        """
        if not callable(hook):
            raise ConfigurationError(f"collect hook must be callable, got {hook!r}")
        with self._lock:
            self._hooks = [*self._hooks, hook]

    def run_collect_hooks(self) -> None:
        for hook in self._hooks:
            try:
                hook()
            except Exception as exc:
                _guard.report(f"metrics.collect_hook:{getattr(hook, '__qualname__', hook)}", exc)

    # -- registration ----------------------------------------------------------------
    def counter(
        self, name: str, description: str = "", labelnames: Sequence[str] | None = None
    ) -> Counter:
        """The counter ``name`` (``_total`` is appended when missing, as Prometheus does).

        Asking again returns the same counter; ``labelnames`` omitted means "as registered"
        (no labels when new), given it must match.
        """
        metric = self._register(
            _counter_name(name),
            MetricType.COUNTER,
            description,
            labelnames,
            lambda n, labels: prometheus_client.Counter(
                n, description, labels, registry=self.prometheus_registry
            ),
        )
        assert isinstance(metric, Counter)
        return metric

    def gauge(
        self,
        name: str,
        description: str = "",
        labelnames: Sequence[str] | None = None,
        *,
        multiprocess_mode: str = "livesum",
    ) -> Gauge:
        """The gauge ``name``.

        ``multiprocess_mode`` tells prometheus_client how to merge the processes' values
        when ``PROMETHEUS_MULTIPROC_DIR`` is set: ``livesum`` (default) adds the live
        processes' values, right for "how many are open now" gauges.
        """
        if multiprocess_mode not in GAUGE_MULTIPROCESS_MODES:
            raise ConfigurationError(
                f"multiprocess_mode must be one of {sorted(GAUGE_MULTIPROCESS_MODES)}, "
                f"got {multiprocess_mode!r}"
            )
        metric = self._register(
            name,
            MetricType.GAUGE,
            description,
            labelnames,
            lambda n, labels: prometheus_client.Gauge(
                n,
                description,
                labels,
                registry=self.prometheus_registry,
                multiprocess_mode=multiprocess_mode,  # type: ignore[arg-type]
            ),
        )
        assert isinstance(metric, Gauge)
        return metric

    def histogram(
        self,
        name: str,
        description: str = "",
        buckets: Sequence[float] | None = None,
        labelnames: Sequence[str] | None = None,
    ) -> Histogram:
        """The histogram ``name`` with upper bounds ``buckets`` (``+Inf`` is added)."""
        bounds = check_buckets(name, buckets)
        existing = self._metrics.get(name)
        if (
            buckets is not None
            and isinstance(existing, Histogram)
            and existing.bucket_bounds != bounds
        ):
            raise ConfigurationError(
                f"histogram {name!r} already exists with buckets {list(existing.bucket_bounds)}"
            )
        metric = self._register(
            name,
            MetricType.HISTOGRAM,
            description,
            labelnames,
            lambda n, labels: prometheus_client.Histogram(
                n, description, labels, registry=self.prometheus_registry, buckets=bounds
            ),
            bounds,
        )
        assert isinstance(metric, Histogram)
        return metric

    def gauge_function(self, name: str, description: str, fn: Callable[[], float]) -> None:
        """A gauge read from ``fn()`` at each collection (process-local)."""
        self._register_callback(name, MetricType.GAUGE, description, fn)

    def counter_function(self, name: str, description: str, fn: Callable[[], float]) -> None:
        """A counter read from ``fn()`` at each collection; ``fn`` must never go down."""
        self._register_callback(_counter_name(name), MetricType.COUNTER, description, fn)

    def _register_callback(
        self, name: str, kind: MetricType, description: str, fn: Callable[[], float]
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"{name}: fn must be callable, got {fn!r}")
        _check_names(name, ())
        with self._lock:
            self._check_free(name, kind)
            family_name = name[: -len("_total")] if kind is MetricType.COUNTER else name
            collector = CallbackCollector(family_name, description, kind, fn)
            try:
                self.prometheus_registry.register(collector)
            except ValueError as exc:
                raise ConfigurationError(f"cannot register metric {name!r}: {exc}") from exc
            self._callbacks[name] = collector

    def _check_free(self, name: str, kind: MetricType) -> None:
        existing = self._metrics.get(name) or self._callbacks.get(name)
        if existing is not None:
            raise ConfigurationError(
                f"metric {name!r} is already registered as a {existing.type.value}"
                f"{' callback' if name in self._callbacks else ''}; cannot register it as "
                f"a {kind.value}{' callback' if name not in self._callbacks else ''}"
            )

    def _register(
        self,
        name: str,
        kind: MetricType,
        description: str,
        labelnames: Sequence[str] | None,
        make: Callable[[str, tuple[str, ...]], Any],
        bounds: tuple[float, ...] = (),
    ) -> Metric[Any]:
        if isinstance(labelnames, str):
            raise ConfigurationError(f"{name}: labelnames must be a sequence of names, not a str")
        existing = self._metrics.get(name)
        if (
            existing is not None
            and existing.type is kind
            and (labelnames is None or existing.labelnames == tuple(labelnames))
        ):
            return existing  # the common case, without the lock
        labels = () if labelnames is None else tuple(labelnames)
        with self._lock:
            existing = self._metrics.get(name)
            if existing is not None or name in self._callbacks:
                if existing is None or existing.type is not kind:
                    self._check_free(name, kind)
                assert existing is not None
                if labelnames is not None and existing.labelnames != labels:
                    raise ConfigurationError(
                        f"metric {name!r} already exists with labels "
                        f"{list(existing.labelnames)}, not {list(labels)}"
                    )
                return existing
            _check_names(name, labels)
            reserved = _RESERVED_LABELS.intersection(labels)
            if reserved:
                raise ConfigurationError(
                    f"{name}: label names {sorted(reserved)} are reserved (they are "
                    "keyword arguments of inc/set/observe)"
                )
            try:
                prom = make(name, labels)
            except ValueError as exc:  # invalid name or label, duplicated series
                raise ConfigurationError(
                    f"cannot register metric {name!r}: {exc}{self._clash(name)}"
                ) from exc
            metric: Metric[Any]
            if kind is MetricType.COUNTER:
                metric = Counter(name, description, labels, prom, self.run_collect_hooks)
            elif kind is MetricType.GAUGE:
                metric = Gauge(name, description, labels, prom, self.run_collect_hooks)
            else:
                metric = Histogram(name, description, labels, prom, bounds, self.run_collect_hooks)
            self._metrics[name] = metric
            return metric

    def _clash(self, name: str) -> str:
        """Which registered metric shares ``name``'s family (counter ``x_total`` is ``x``)."""
        family = name.removesuffix("_total")
        others: list[Metric[Any] | CallbackCollector] = [
            *self._metrics.values(),
            *self._callbacks.values(),
        ]
        for other in others:
            other_family = other.name.removesuffix("_total")
            if family in (other_family, other.name) or other_family == name:
                return f" (it clashes with the {other.type.value} {other.name!r})"
        return ""

    def get(self, name: str) -> Counter | Gauge | Histogram | None:
        """The registered metric ``name`` (counters by either spelling), or None."""
        metric = self._metrics.get(name) or self._metrics.get(_counter_name(name))
        return metric  # type: ignore[return-value]

    @property
    def names(self) -> list[str]:
        return sorted([*self._metrics, *self._callbacks])

    # -- reading -----------------------------------------------------------------------
    def collect(self) -> list[dict[str, Any]]:
        """Every series as a dict: name, type, labels, description, timestamp and either
        ``value`` (counter, gauge) or ``count``/``sum``/``buckets`` (histogram; buckets are
        cumulative, keyed by upper bound, ``math.inf`` last)."""
        now = time.time()
        self.run_collect_hooks()
        out: list[dict[str, Any]] = []
        for metric in list(self._metrics.values()):
            out.extend(metric.collect_dicts(now))
        for name, callback in list(self._callbacks.items()):
            value = callback.read()
            if value is not None:
                out.append({
                    "name": name,
                    "type": callback.type.value,
                    "value": value,
                    "labels": {},
                    "description": callback.description,
                    "timestamp": now,
                })  # fmt: skip
        return out

    def to_prometheus_text(self) -> str:
        """Prometheus text exposition format 0.0.4 (what ``/metrics`` serves)."""
        return prometheus_text(self.prometheus_registry)

    def to_openmetrics_text(self) -> str:
        """OpenMetrics 1.0 text, which carries exemplars (trace ids on latency and cost)."""
        return openmetrics_text(self.prometheus_registry)

    # -- serving -----------------------------------------------------------------------
    def start_http_server(self, port: int = 0, addr: str = "127.0.0.1") -> tuple[Any, int]:
        """Serve ``/metrics`` of this registry on a daemon thread; returns (server, port).

        ``port=0`` picks a free port. Binds to localhost unless told otherwise: metrics
        can reveal model names and user activity.
        """
        return self._server.start(port, addr)

    def stop(self) -> None:
        """Stop the metrics server (idempotent)."""
        self._server.stop()


class MetricsCollector(MetricsRegistry):
    """Prototype alias of :class:`MetricsRegistry`."""


def _check_names(name: object, labelnames: Sequence[object]) -> None:
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise ConfigurationError(
            f"cannot register metric {name!r}: a metric name is letters, digits, '_' and "
            "':', not starting with a digit"
        )
    for label in labelnames:
        if not isinstance(label, str) or not _LABEL_NAME.fullmatch(label) or label == "le":
            raise ConfigurationError(
                f"cannot register metric {name!r}: bad label name {label!r} (letters, "
                "digits and '_', not starting with a digit; 'le' is the histogram's)"
            )
