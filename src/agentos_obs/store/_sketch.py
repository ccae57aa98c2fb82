"""Mergeable percentile sketches of the store's rollups: DDSketch bins in a blob.

A sketch is the bins of a DDSketch with ``LogarithmicMapping(RELATIVE_ACCURACY)``: a value
``v > 0`` falls in bin ``ceil(log(v) / log(gamma))`` and a bin stands for one value within
``RELATIVE_ACCURACY`` of every value in it, so any quantile read from merged bins is within
1 % of the exact nearest-rank value. Zero (and anything below ``MIN_VALUE``) has a bin of
its own, ``ZERO_KEY``. Sketches merge by adding counts, and subtract exactly (retention takes
deleted traces back out of the rollups).

Stored as little-endian int32 pairs ``(key, count)`` sorted by key: 8 bytes a bin, a few
dozen bins for a latency distribution. Many blobs merge at once with numpy (one
``frombuffer`` over their concatenation), so a query over thousands of rollup rows does not
loop in Python per bin.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from ddsketch.mapping import LogarithmicMapping

__all__ = [
    "MAPPING",
    "MIN_VALUE",
    "RELATIVE_ACCURACY",
    "ZERO_KEY",
    "Bins",
    "add_bins",
    "add_value",
    "bins_of",
    "decode",
    "encode",
    "key_of",
    "keys_of",
    "merge_blobs",
    "merge_many",
    "quantile",
    "quantiles",
]

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
MIN_VALUE = 1e-9  # ms: a picosecond; smaller durations count as zero
ZERO_KEY = -(2**31)
_INV_LN_GAMMA = 1.0 / math.log(MAPPING.gamma)
_LITTLE = sys.byteorder == "little"

Bins = dict[int, int]


def key_of(value: float) -> int:
    """The bin of ``value`` (the key ``MAPPING.key`` gives, computed without a call)."""
    if value < MIN_VALUE:
        return ZERO_KEY
    return math.ceil(math.log(value) * _INV_LN_GAMMA)


def keys_of(values: np.ndarray) -> np.ndarray:
    """:func:`key_of` of each value (vectorised)."""
    values = np.asarray(values, dtype=np.float64)
    keys = np.full(values.shape, ZERO_KEY, dtype=np.int64)
    positive = values >= MIN_VALUE
    keys[positive] = np.ceil(np.log(values[positive]) * _INV_LN_GAMMA)
    return keys


def add_value(bins: Bins, value: float, count: int = 1) -> None:
    key = key_of(value)
    bins[key] = bins.get(key, 0) + count


def encode(bins: Mapping[int, int]) -> bytes | None:
    """The blob of ``bins`` (empty bins dropped); None when nothing is left."""
    flat = array("i")
    for key in sorted(bins):
        count = bins[key]
        if count:
            flat.append(key)
            flat.append(count)
    if not flat:
        return None
    if not _LITTLE:
        flat.byteswap()
    return flat.tobytes()


def decode(blob: bytes | None) -> Bins:
    if not blob:
        return {}
    flat = array("i")
    flat.frombytes(blob)
    if not _LITTLE:
        flat.byteswap()
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def merge_blobs(old: bytes | None, new: bytes | None) -> bytes | None:
    """``old`` + ``new`` (counts may be negative: a subtraction); SQL function of the writer."""
    if not new:
        return old
    if not old:
        return new
    bins = decode(old)
    for key, count in decode(new).items():
        bins[key] = bins.get(key, 0) + count
    return encode({k: c for k, c in bins.items() if c > 0})


def merge_many(
    groups: Sequence[object], blobs: Sequence[bytes | None]
) -> dict[object, tuple[np.ndarray, np.ndarray]]:
    """Merge the blobs of each group: ``{group: (sorted keys, counts)}``.

    ``groups[i]`` names the group of ``blobs[i]``. One pass over all the bins: their keys
    are small integers, so the counts add up in a dense (group, key) array (``bincount``)
    instead of being sorted.
    """
    kept = [i for i, blob in enumerate(blobs) if blob]
    if not kept:
        return {}
    labels: dict[object, int] = {}
    group_of = [labels.setdefault(groups[i], len(labels)) for i in kept]
    chosen = [blobs[i] for i in kept]
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen)) // 8  # type: ignore[arg-type]
    flat = np.frombuffer(b"".join(chosen), dtype="<i4").reshape(-1, 2)  # type: ignore[arg-type]
    keys = flat[:, 0].astype(np.int64)
    counts = flat[:, 1].astype(np.int64)
    zero = keys == ZERO_KEY
    low = int(keys[~zero].min()) if (~zero).any() else 0
    keys = np.where(zero, low - 1, keys)  # the zero bin just below the smallest key
    low -= 1
    span = int(keys.max()) - low + 1
    cells = np.repeat(np.asarray(group_of, dtype=np.int64), lengths) * span + (keys - low)
    dense = np.bincount(cells, weights=counts, minlength=len(labels) * span)
    dense = np.rint(dense).astype(np.int64).reshape(len(labels), span)
    axis = np.arange(low, low + span, dtype=np.int64)
    if zero.any():
        axis[0] = ZERO_KEY
    out: dict[object, tuple[np.ndarray, np.ndarray]] = {}
    for group, index in labels.items():
        row = dense[index]
        present = row > 0
        out[group] = (axis[present], row[present])
    return out


def add_bins(
    merged: tuple[np.ndarray, np.ndarray] | None, extra: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``merged`` (from :func:`merge_many`) plus the bins of a dict."""
    combined: dict[int, int] = {}
    if merged is not None:
        combined.update(zip(merged[0].tolist(), merged[1].tolist(), strict=True))
    for key, count in extra.items():
        combined[key] = combined.get(key, 0) + count
    keys = sorted(k for k, c in combined.items() if c > 0)
    return (
        np.array(keys, dtype=np.int64),
        np.array([combined[k] for k in keys], dtype=np.int64),
    )


def _value(key: int) -> float:
    return 0.0 if key == ZERO_KEY else float(MAPPING.value(key))


def quantile(
    keys: np.ndarray,
    counts: np.ndarray,
    q: float,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """Nearest-rank ``q`` quantile (0 < q <= 1) of merged bins, within 1 % of the exact one.

    ``low``/``high`` (the exact minimum and maximum) clamp the answer, so a distribution of
    one value reads back exactly.
    """
    total = int(counts.sum()) if len(counts) else 0
    if total <= 0:
        return None
    rank = max(1, math.ceil(total * q))
    index = int(np.searchsorted(np.cumsum(counts), rank))
    value = _value(int(keys[min(index, len(keys) - 1)]))
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


_GAMMA = float(MAPPING.gamma)
_SCALE = 2.0 / (1.0 + _GAMMA)


def quantiles(
    sketches: Sequence[tuple[np.ndarray, np.ndarray]],
    qs: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
) -> np.ndarray:
    """:func:`quantile` of many merged sketches at once: ``[sketch][q]`` (NaN: empty)."""
    count = len(sketches)
    out = np.full((count, len(qs)), np.nan)
    if not count:
        return out
    width = max(1, max(len(k) for k, _ in sketches))
    keys = np.zeros((count, width), dtype=np.int64)
    counts = np.zeros((count, width), dtype=np.int64)
    for row, (k, c) in enumerate(sketches):
        keys[row, : len(k)] = k
        counts[row, : len(c)] = c
        if len(k) < width and len(k):
            keys[row, len(k) :] = k[-1]
    cumulative = np.cumsum(counts, axis=1)
    totals = cumulative[:, -1]
    values = np.where(keys == ZERO_KEY, 0.0, np.power(_GAMMA, keys.astype(np.float64)) * _SCALE)
    low = np.array([-np.inf if v is None else v for v in lows])
    high = np.array([np.inf if v is None else v for v in highs])
    rows = np.arange(count)
    for column, q in enumerate(qs):
        ranks = np.maximum(1, np.ceil(totals * q))
        index = np.argmax(cumulative >= ranks[:, None], axis=1)
        picked = np.clip(values[rows, index], low, high)
        out[:, column] = np.where(totals > 0, picked, np.nan)
    return out


def bins_of(values: Iterable[float]) -> Bins:
    bins: Bins = {}
    for value in values:
        add_value(bins, value)
    return bins
