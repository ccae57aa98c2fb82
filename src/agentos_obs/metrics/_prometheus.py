"""The one module that touches prometheus_client's private attributes, and its fallback.

Why: :class:`~agentos_obs.metrics.SeriesBatch` keeps a histogram's pending observations as
per-bucket counts, a sum and the last exemplar of each bucket, and applies them before a
read. prometheus_client's public API only has ``observe(value)``: one lock and one scan of
the bounds per observation, on the caller's thread. Applying a batch straight into the
child's values is what keeps ``SpanMetricsProcessor.on_end`` cheap.

What is read, on a labelled child of ``prometheus_client.Histogram`` (unchanged from
prometheus_client 0.8 to 0.26 at least):

* ``_upper_bounds``: the bucket upper bounds, ``+Inf`` last;
* ``_buckets``: one value object per bound (counts are NOT cumulative in storage), each
  with ``inc(n)`` and ``set_exemplar(Exemplar)``;
* ``_sum``: the sum's value object, with ``inc(x)``.

Nothing else in agentos_obs reads a private attribute of prometheus_client.

Selection, at import (:data:`DIRECT`): :func:`probe` writes through those attributes into a
throwaway in-memory histogram and reads it back through the public ``collect()``. Any
difference (an attribute missing or renamed, another shape, a write not seen) selects the
fallback; :data:`FALLBACK_REASON` says why. In multi-process mode the probe only checks
the shape (a probe's values would land in the shared files). :func:`bucket_writer` checks
each child again and returns None on any mismatch. ``AGENTOS_OBS_METRICS_PUBLIC_API=1``
forces the fallback (an escape hatch if a release breaks this in a way the probe misses).

Fallback: pending histograms hand each observation to the public ``observe()`` at once.
Slower on the caller's thread (about 2 µs per observation, taking prometheus_client's
locks: ``SpanMetricsProcessor.on_end`` of an LLM span goes from ~2.2 µs to ~11.6 µs on the
2-core test machine), never wrong: the exposition is the same, exemplar timestamps aside
(tests/metrics/test_prometheus_adapter.py checks both paths).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import prometheus_client
from prometheus_client.samples import Exemplar

from agentos_obs.metrics._multiprocess import is_multiprocess

__all__ = [
    "DIRECT",
    "FALLBACK_REASON",
    "FORCE_PUBLIC_ENV",
    "BucketWriter",
    "PendingExemplar",
    "bucket_writer",
    "probe",
]

FORCE_PUBLIC_ENV = "AGENTOS_OBS_METRICS_PUBLIC_API"

# One pending exemplar: (labels, observed value, epoch seconds).
PendingExemplar = tuple[Mapping[str, str], float, float]


class BucketWriter:
    """Adds pre-counted observations straight into one histogram child's values."""

    __slots__ = ("_buckets", "_sum")

    def __init__(self, buckets: list[Any], total: Any) -> None:
        self._buckets = buckets
        self._sum = total

    def add(
        self,
        counts: Sequence[int],
        total: float,
        exemplars: Sequence[PendingExemplar | None],
    ) -> None:
        """``counts[i]`` more observations in bucket ``i`` (``+Inf`` last), ``total`` more in
        the sum, and bucket ``i``'s exemplar replaced by ``exemplars[i]`` when given."""
        self._sum.inc(total)
        buckets = self._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
        for index, kept in enumerate(exemplars):
            if kept is not None:
                labels, observed, timestamp = kept
                buckets[index].set_exemplar(Exemplar(dict(labels), observed, timestamp))


def _shape_problem(child: Any, bounds: Sequence[float]) -> str | None:
    """What differs from the expected private shape of a histogram child, if anything."""
    upper = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    expected = [*(float(b) for b in bounds), math.inf]
    if not isinstance(upper, (list, tuple)):
        return f"_upper_bounds is {type(upper).__name__}, not a list"
    try:
        same_bounds = [float(b) for b in upper] == expected
    except (TypeError, ValueError):
        same_bounds = False
    if not same_bounds:
        return f"_upper_bounds is {upper!r}, expected {expected!r}"
    if not isinstance(buckets, list) or len(buckets) != len(expected):
        return f"_buckets is not a list of {len(expected)} values"
    for value in buckets:
        if not callable(getattr(value, "inc", None)):
            return "a _buckets value lacks inc()"
        if not callable(getattr(value, "set_exemplar", None)):
            return "a _buckets value lacks set_exemplar()"
    if not callable(getattr(total, "inc", None)):
        return "_sum lacks inc()"
    return None


def bucket_writer(child: Any, bounds: Sequence[float]) -> BucketWriter | None:
    """A direct writer into ``child`` (a labelled prometheus_client histogram child with
    finite upper bounds ``bounds``), or None: use the public ``observe()`` then."""
    if not DIRECT or _shape_problem(child, bounds) is not None:
        return None
    return BucketWriter(list(child._buckets), child._sum)


def probe() -> str | None:
    """None when the private shape is as expected and writes through it are seen by the
    public ``collect()``; else what differs."""
    bounds = (1.0, 2.0)
    try:
        if is_multiprocess():
            # Shape only: the bounds are set at construction; values exist per child, and a
            # child's values would be written to the shared files.
            labelled = prometheus_client.Histogram(
                "agentos_obs_shape_probe", "", ["probe"], registry=None, buckets=bounds
            )
            upper = getattr(labelled, "_upper_bounds", None)
            if not isinstance(upper, list) or upper != [*bounds, math.inf]:
                return f"_upper_bounds of a histogram is {upper!r}"
            return None
        histogram = prometheus_client.Histogram(
            "agentos_obs_shape_probe", "", registry=None, buckets=bounds
        )
        problem = _shape_problem(histogram, bounds)
        if problem is not None:
            return problem
        writer = BucketWriter(list(histogram._buckets), histogram._sum)
        writer.add([2, 0, 1], 5.5, [({"trace_id": "probe"}, 0.5, 1.0), None, None])
        seen: dict[str, float] = {}
        exemplar = None
        for metric in histogram.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    seen[sample.labels["le"]] = sample.value
                    if sample.labels["le"] == "1.0":
                        exemplar = sample.exemplar
                elif sample.name.endswith(("_count", "_sum")):
                    seen[sample.name.rsplit("_", 1)[1]] = sample.value
        expected = {"1.0": 2.0, "2.0": 2.0, "+Inf": 3.0, "count": 3.0, "sum": 5.5}
        if seen != expected:
            return f"writes through the private values read back as {seen}, not {expected}"
        if exemplar is None or dict(exemplar.labels) != {"trace_id": "probe"}:
            return f"an exemplar set through the private values reads back as {exemplar!r}"
    except Exception as exc:  # any surprise means: do not rely on the private shape
        return f"{type(exc).__name__}: {exc}"
    return None


def _select() -> tuple[bool, str | None]:
    if os.environ.get(FORCE_PUBLIC_ENV, "").lower() in ("1", "true", "yes"):
        return False, f"{FORCE_PUBLIC_ENV} is set"
    reason = probe()
    return reason is None, reason


DIRECT, FALLBACK_REASON = _select()
