"""Batched writers: updates to many series taken under one lock, applied before any read."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentos_obs.metrics._instruments import CounterChild, HistogramChild
from agentos_obs.metrics._multiprocess import is_multiprocess
from agentos_obs.metrics._prometheus import PendingExemplar, bucket_writer

if TYPE_CHECKING:
    from agentos_obs.metrics._registry import MetricsRegistry

__all__ = ["PendingCounter", "PendingHistogram", "SeriesBatch"]


class SeriesBatch:
    """Updates to many series taken under ONE lock, applied to prometheus_client later.

    Ending a span updates a dozen series; through prometheus_client each update takes its
    own lock. A writer using a batch takes ``batch.lock`` once, adds to plain numbers
    (:meth:`counter` and :meth:`histogram` give the pending series), and the sums are
    applied by :meth:`flush`, which the registry runs before every read (scrape,
    exposition, ``collect()``, ``.value``), so readers never see stale values.

    In multi-process mode another process reads the values from files without asking this
    one, so ``immediate`` is true: the writer must call :meth:`flush` after its updates.
    Pending series skip argument checks: writers pass counter amounts >= 0 and finite
    observations with short ``str -> str`` exemplars.
    """

    def __init__(self, registry: MetricsRegistry) -> None:
        self.lock = threading.Lock()
        self.immediate = is_multiprocess()
        self._dirty: list[PendingCounter | PendingHistogram] = []
        registry.add_collect_hook(self.flush)

    def counter(self, child: CounterChild) -> PendingCounter:
        return PendingCounter(child, self._dirty)

    def histogram(self, child: HistogramChild) -> PendingHistogram:
        return PendingHistogram(child, self._dirty)

    def flush(self) -> None:
        with self.lock:
            dirty = self._dirty[:]
            self._dirty.clear()
            for pending in dirty:
                pending.apply()


class PendingCounter:
    """A counter series' increments not yet applied. ``add`` needs the batch's lock."""

    __slots__ = ("_child", "_dirty", "_queue", "amount")

    def __init__(self, child: CounterChild, queue: list[Any]) -> None:
        self._child = child
        self._queue = queue
        self._dirty = False
        self.amount = 0.0

    def add(self, amount: float = 1.0) -> None:
        self.amount += amount
        if not self._dirty:
            self._dirty = True
            self._queue.append(self)

    def apply(self) -> None:
        amount, self.amount, self._dirty = self.amount, 0.0, False
        if amount:
            self._child.inc(amount)


class PendingHistogram:
    """A histogram series' observations not yet applied: bucket counts, sum, and the last
    exemplar of each bucket. ``add`` needs the batch's lock.

    When prometheus_client's bucket values cannot be written directly (see
    :mod:`agentos_obs.metrics._prometheus`), :attr:`batched` is false and each observation
    goes to the public ``observe()`` at once.
    """

    __slots__ = (
        "_bounds",
        "_dirty",
        "_observe",
        "_queue",
        "_writer",
        "counts",
        "exemplars",
        "total",
    )

    def __init__(self, child: HistogramChild, queue: list[Any]) -> None:
        self._queue = queue
        self._dirty = False
        self._bounds = child.bucket_bounds
        self._writer = bucket_writer(child.prometheus_metric, self._bounds)
        self._observe = child.prometheus_metric.observe
        self.counts = [0] * (len(self._bounds) + 1)  # +Inf last
        self.total = 0.0
        self.exemplars: list[PendingExemplar | None] = [None] * len(self.counts)

    @property
    def batched(self) -> bool:
        """True when observations are kept here and applied by the batch's flush."""
        return self._writer is not None

    def add(
        self,
        value: float,
        exemplar: Mapping[str, str] | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Observe ``value``; ``exemplar`` is kept as its bucket's latest, stamped
        ``timestamp`` (epoch seconds; default now)."""
        if self._writer is None:
            self._observe(value, exemplar)
            return
        # Bucket i counts value <= bounds[i]: the first bound >= value (bounds are inclusive).
        index = bisect_left(self._bounds, value)
        self.counts[index] += 1
        self.total += value
        if exemplar is not None:
            when = time.time() if timestamp is None else timestamp
            self.exemplars[index] = (exemplar, value, when)
        if not self._dirty:
            self._dirty = True
            self._queue.append(self)

    def apply(self) -> None:
        self._dirty = False
        writer = self._writer
        if writer is None:
            return
        counts, exemplars = self.counts, self.exemplars
        writer.add(counts, self.total, exemplars)
        self.total = 0.0
        for index in range(len(counts)):
            counts[index] = 0
            exemplars[index] = None
