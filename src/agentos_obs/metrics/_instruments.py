"""Counters, gauges and histograms: the prototype's metric API over prometheus_client's
public API. Labels are keyword arguments; a child (one labelled series) is created once per
label values and cached, so writing is a dict lookup and a call into prometheus_client."""

from __future__ import annotations

import builtins
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client.samples import Sample

from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics._buckets import DEFAULT_BUCKETS

__all__ = [
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Metric",
    "MetricType",
    "check_exemplar",
]


class MetricType(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


def _nothing() -> None:
    return None


# -- children: one labelled series each, cached by the parent ---------------------------


class CounterChild:
    """One series of a counter."""

    __slots__ = ("_prom", "_sync", "labels")

    def __init__(
        self, prom: Any, labels: Mapping[str, str], sync: Callable[[], None] = _nothing
    ) -> None:
        self._prom = prom
        self._sync = sync  # applies batched updates before a read
        self.labels = dict(labels)

    @property
    def prometheus_metric(self) -> Any:
        """The prometheus_client child behind this series."""
        return self._prom

    def inc(self, amount: float = 1.0, exemplar: Mapping[str, str] | None = None) -> None:
        if not amount >= 0:  # NaN too: it would poison the counter for good
            raise ValueError(f"counters only go up: inc({amount!r}) is negative or NaN")
        if exemplar:
            check_exemplar(exemplar)
            self._prom.inc(amount, dict(exemplar))
        else:
            self._prom.inc(amount)

    @property
    def value(self) -> float:
        self._sync()
        return _sample_value(self._prom, "_total")


class GaugeChild:
    __slots__ = ("_prom", "_sync", "labels")

    def __init__(
        self, prom: Any, labels: Mapping[str, str], sync: Callable[[], None] = _nothing
    ) -> None:
        self._prom = prom
        self._sync = sync
        self.labels = dict(labels)

    @property
    def prometheus_metric(self) -> Any:
        return self._prom

    def set(self, value: float) -> None:
        self._prom.set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._prom.inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._prom.dec(amount)

    @property
    def value(self) -> float:
        self._sync()
        return _sample_value(self._prom, "")


class HistogramChild:
    """One series of a histogram."""

    __slots__ = ("_prom", "_sync", "bucket_bounds", "labels")

    def __init__(
        self,
        prom: Any,
        labels: Mapping[str, str],
        bucket_bounds: Sequence[float],
        sync: Callable[[], None] = _nothing,
    ) -> None:
        self._prom = prom
        self._sync = sync
        self.labels = dict(labels)
        self.bucket_bounds: tuple[float, ...] = tuple(bucket_bounds)  # finite; +Inf implied

    @property
    def prometheus_metric(self) -> Any:
        return self._prom

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        if value != value:  # NaN: lands in no bucket and poisons the sum forever
            raise ValueError("cannot observe NaN")
        if exemplar:
            check_exemplar(exemplar)
            self._prom.observe(value, dict(exemplar))
        else:
            self._prom.observe(value)

    @property
    def count(self) -> int:
        self._sync()
        return int(_sample_value(self._prom, "_count"))

    @property
    def sum(self) -> float:
        self._sync()
        return _sample_value(self._prom, "_sum")

    @property
    def buckets(self) -> dict[float, int]:
        """Cumulative counts by upper bound, ``math.inf`` last (as exposed to Prometheus)."""
        self._sync()
        return _histogram_buckets(_samples(self._prom))


_EXEMPLAR_MAX_RUNES = 128  # OpenMetrics limit on an exemplar's label names + values


def check_exemplar(exemplar: Mapping[str, str]) -> None:
    """ValueError unless ``exemplar`` is str -> str labels within the OpenMetrics limit."""
    runes = 0
    for key, val in exemplar.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ValueError(f"exemplar labels must be str -> str, got {key!r}: {val!r}")
        runes += len(key) + len(val)
    if runes > _EXEMPLAR_MAX_RUNES:
        raise ValueError(f"exemplar labels have {runes} characters, more than 128")


def _samples(prom: Any) -> list[Sample]:
    samples: list[Sample] = []
    for family in prom.collect():
        samples.extend(family.samples)
    return samples


def _sample_value(prom: Any, suffix: str) -> float:
    for sample in _samples(prom):
        if sample.name.endswith(suffix) and not sample.name.endswith("_created"):
            return float(sample.value)
    return 0.0


def _histogram_buckets(samples: Iterable[Sample]) -> dict[float, int]:
    return {float(s.labels["le"]): int(s.value) for s in samples if s.name.endswith("_bucket")}


# -- metrics ----------------------------------------------------------------------------

ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class Metric(Generic[ChildT]):
    """A named metric with fixed label names; children are created once per label values."""

    type: ClassVar[MetricType]
    _child_class: ClassVar[builtins.type[Any]]

    def __init__(
        self,
        name: str,
        description: str,
        labelnames: Sequence[str],
        prom: Any,
        sync: Callable[[], None] = _nothing,
    ) -> None:
        self.name = name
        self.description = description
        self.labelnames: tuple[str, ...] = tuple(labelnames)
        self._prom = prom
        self._sync = sync  # the registry's collect hooks: batched updates land before reads
        self._children: dict[tuple[str, ...], ChildT] = {}
        self._lock = threading.Lock()
        # Without labels the prometheus_client metric is itself the one series.
        self._single: ChildT | None = None if self.labelnames else self._make_child(prom, {})

    def _make_child(self, prom: Any, labels: Mapping[str, str]) -> ChildT:
        child: ChildT = self._child_class(prom, labels, self._sync)
        return child

    def labels(self, **labels: object) -> ChildT:
        """The series for these label values (created on first use, then cached)."""
        if not self.labelnames:
            raise ValueError(f"{self.name} has no labels")
        return self._child(self._key(labels))

    def _series(self, labels: Mapping[str, object]) -> ChildT:
        if self._single is not None and not labels:
            return self._single
        return self._child(self._key(labels))

    def _key(self, labels: Mapping[str, object]) -> tuple[str, ...]:
        if len(labels) != len(self.labelnames) or not all(n in labels for n in self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def _child(self, key: tuple[str, ...]) -> ChildT:
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._make_child(
                        self._prom.labels(*key), dict(zip(self.labelnames, key, strict=True))
                    )
                    self._children[key] = child
        return child

    def _existing(self, labels: Mapping[str, object]) -> ChildT | None:
        """The series if it exists: reading never creates a series."""
        if self._single is not None and not labels:
            return self._single
        return self._children.get(self._key(labels))

    def _all_series(self) -> list[ChildT]:
        if self._single is not None:
            return [self._single]
        return list(self._children.values())

    def collect_dicts(self, now: float) -> list[dict[str, Any]]:
        """Every series as the prototype's ``collect()`` dicts."""
        self._sync()
        by_labels: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        for sample in _samples(self._prom):
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            by_labels.setdefault(key, []).append(sample)
        out = []
        for key, samples in by_labels.items():
            entry: dict[str, Any] = {"name": self.name, "type": self.type.value}
            entry.update(self._summarise(samples))
            entry["labels"] = dict(key)
            entry["description"] = self.description
            entry["timestamp"] = now
            out.append(entry)
        return out

    def _summarise(self, samples: list[Sample]) -> dict[str, Any]:
        value = next((s.value for s in samples if not s.name.endswith("_created")), 0.0)
        return {"value": float(value)}


class Counter(Metric[CounterChild]):
    """A monotonically increasing count. ``inc(amount, **labels)``."""

    type = MetricType.COUNTER
    _child_class = CounterChild

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self._series(labels).inc(amount)

    @property
    def value(self) -> float:
        """The count (with labels: the sum over every series)."""
        return sum(child.value for child in self._all_series())

    def get(self, **labels: object) -> float:
        child = self._existing(labels)
        return 0.0 if child is None else child.value


class Gauge(Metric[GaugeChild]):
    """A value that goes up and down. ``set``/``inc``/``dec`` with ``**labels``."""

    type = MetricType.GAUGE
    _child_class = GaugeChild

    def set(self, value: float, **labels: object) -> None:
        self._series(labels).set(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self._series(labels).inc(amount)

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        self._series(labels).dec(amount)

    def set_function(self, fn: Callable[[], float]) -> None:
        """Read the value from ``fn()`` at each collection (unlabelled gauges only).

        In multi-process mode the function is only seen by this process's registry.
        """
        if self.labelnames:
            raise ConfigurationError(f"{self.name}: set_function needs an unlabelled gauge")
        self._prom.set_function(fn)

    @property
    def value(self) -> float:
        """The value (with labels: the sum over every series)."""
        if self._single is not None:  # read through collect(): set_function gauges too
            self._sync()
            return _sample_value(self._prom, "")
        return sum(child.value for child in self._all_series())

    def get(self, **labels: object) -> float:
        child = self._existing(labels)
        return 0.0 if child is None else child.value


class Histogram(Metric[HistogramChild]):
    """Counts of observations in buckets (exposed cumulative, with ``+Inf``), sum and count."""

    type = MetricType.HISTOGRAM
    _child_class = HistogramChild
    DEFAULT_BUCKETS: ClassVar[tuple[float, ...]] = DEFAULT_BUCKETS

    def __init__(
        self,
        name: str,
        description: str,
        labelnames: Sequence[str],
        prom: Any,
        bucket_bounds: Sequence[float],
        sync: Callable[[], None] = _nothing,
    ) -> None:
        self.bucket_bounds: tuple[float, ...] = tuple(bucket_bounds)
        super().__init__(name, description, labelnames, prom, sync)

    def _make_child(self, prom: Any, labels: Mapping[str, str]) -> HistogramChild:
        return HistogramChild(prom, labels, self.bucket_bounds, self._sync)

    def observe(
        self, value: float, exemplar: Mapping[str, str] | None = None, **labels: object
    ) -> None:
        self._series(labels).observe(value, exemplar)

    @property
    def count(self) -> int:
        return sum(child.count for child in self._all_series())

    @property
    def sum(self) -> float:
        return sum(child.sum for child in self._all_series())

    @property
    def buckets(self) -> dict[float, int]:
        """Cumulative counts by upper bound, ``math.inf`` last (summed over series)."""
        total: dict[float, int] = {}
        for child in self._all_series():
            for bound, count in child.buckets.items():
                total[bound] = total.get(bound, 0) + count
        return total or self._empty_buckets()

    def get_count(self, **labels: object) -> int:
        child = self._existing(labels)
        return 0 if child is None else child.count

    def get_sum(self, **labels: object) -> float:
        child = self._existing(labels)
        return 0.0 if child is None else child.sum

    def get_buckets(self, **labels: object) -> dict[float, int]:
        child = self._existing(labels)
        return self._empty_buckets() if child is None else child.buckets

    def _empty_buckets(self) -> dict[float, int]:
        return {**{float(b): 0 for b in self.bucket_bounds}, math.inf: 0}

    def _summarise(self, samples: list[Sample]) -> dict[str, Any]:
        count = next((s.value for s in samples if s.name.endswith("_count")), 0.0)
        total = next((s.value for s in samples if s.name.endswith("_sum")), 0.0)
        return {"count": int(count), "sum": float(total), "buckets": _histogram_buckets(samples)}
