"""prometheus_client collectors that read values at scrape time: the registry's collect
hooks, agentos_obs's own health counters, and callback metrics."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

import agentos_obs._internal.guard as _guard
from agentos_obs.metrics._instruments import MetricType

if TYPE_CHECKING:
    from agentos_obs.metrics._registry import MetricsRegistry

__all__ = ["CallbackCollector", "CollectHooks", "InternalHealthCollector"]


class CollectHooks:
    """Yields no metric: runs the registry's collect hooks when a scrape starts."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self._registry = weakref.ref(registry)  # the registry owns us: no cycle

    def collect(self) -> Iterable[Metric]:
        registry = self._registry()
        if registry is not None:
            registry.run_collect_hooks()
        return []

    def describe(self) -> Iterable[Metric]:
        return []


class InternalHealthCollector:
    """agentos_obs's own failures and drops (from the guard), in every registry."""

    def collect(self) -> Iterable[Metric]:
        errors = CounterMetricFamily(
            "agentos_obs_internal_errors",
            "Internal failures of agentos_obs, swallowed to protect the application "
            "(details logged once to the agentos_obs logger)",
            labels=["component"],
        )
        for component, count in sorted(_guard.failure_counts().items()):
            errors.add_metric([component], count)
        dropped = CounterMetricFamily(
            "agentos_obs_dropped",
            "Items agentos_obs dropped on purpose (full queue, bounded buffer, label limit)",
            labels=["component"],
        )
        for component, count in sorted(_guard.dropped_counts().items()):
            dropped.add_metric([component], count)
        return [errors, dropped]

    def describe(self) -> Iterable[Metric]:
        return [
            CounterMetricFamily("agentos_obs_internal_errors", "", labels=["component"]),
            CounterMetricFamily("agentos_obs_dropped", "", labels=["component"]),
        ]


class CallbackCollector:
    """One counter or gauge whose value ``fn()`` gives at collection time."""

    def __init__(
        self, name: str, description: str, kind: MetricType, fn: Callable[[], float]
    ) -> None:
        self.name = name
        self.description = description
        self.type = kind
        self._fn = fn

    def _family(self) -> Metric:
        if self.type is MetricType.COUNTER:
            return CounterMetricFamily(self.name, self.description)
        return GaugeMetricFamily(self.name, self.description)

    def read(self) -> float | None:
        try:
            return float(self._fn())
        except Exception as exc:
            _guard.report(f"metrics.callback:{self.name}", exc)
            return None

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        value = self.read()
        if value is not None:
            suffix = "_total" if self.type is MetricType.COUNTER else ""
            family.add_sample(family.name + suffix, {}, value)
        return [family]

    def describe(self) -> Iterable[Metric]:
        return [self._family()]
