"""Reading the rollups over a time window, exactly.

A window ``[since, until)`` is covered by the largest whole buckets that fit (days, then
hours), and what is left at its ends — less than the finest bucket — is folded from the
stored rows of the traces that started there, with the same fold the writer uses
(:func:`agentos_obs.store._ingest.refold`). So an answer is what a scan of the spans would
give (percentiles within the sketches' 1 %), while the work is bounded by the number of
buckets plus at most two hours of traces, whatever the size of the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from agentos_obs.store import _sketch as sketch
from agentos_obs.store._ingest import refold
from agentos_obs.store._rollups import DIM_KIND, ROLLUP_SUMS, WIDTH_S, Acc, Fold

__all__ = ["QUANTILES", "Merged", "cover", "gather", "precompute", "raw_fold"]

_NS = 1_000_000_000
_SUM_SQL = ", ".join(f"TOTAL({c})" for c in ROLLUP_SUMS)


class Merged:
    """The rollup facts of one key over a window."""

    __slots__ = ("cached", "max", "min", "run", "self", "sums")

    def __init__(self) -> None:
        self.sums: dict[str, float] = dict.fromkeys(ROLLUP_SUMS, 0.0)
        self.min: float | None = None
        self.max: float | None = None
        self.run: tuple[np.ndarray, np.ndarray] | None = None
        self.self: tuple[np.ndarray, np.ndarray] | None = None
        self.cached: dict[tuple[bool, float], float | None] = {}

    def int(self, name: str) -> int:
        return round(self.sums[name])

    def bound(self, low: float | None, high: float | None) -> None:
        if low is not None and (self.min is None or low < self.min):
            self.min = low
        if high is not None and (self.max is None or high > self.max):
            self.max = high

    def quantile(self, q: float) -> float | None:
        if (False, q) in self.cached:
            return self.cached[(False, q)]
        if self.run is None:
            return None
        return sketch.quantile(self.run[0], self.run[1], q, low=self.min, high=self.max)

    def self_quantile(self, q: float) -> float | None:
        if (True, q) in self.cached:
            return self.cached[(True, q)]
        if self.self is None:
            return None
        # A span's self time is at most its duration: the runs' maximum bounds it too.
        return sketch.quantile(self.self[0], self.self[1], q, low=0.0, high=self.max)


QUANTILES = (0.5, 0.95, 0.99)


def precompute(merged: dict[Any, Merged]) -> None:
    """The usual quantiles of every group at once (one numpy pass, not one per group)."""
    for own in (False, True):
        groups = [m for m in merged.values() if (m.self if own else m.run) is not None]
        if not groups:
            continue
        table = sketch.quantiles(
            [m.self if own else m.run for m in groups],  # type: ignore[misc]
            QUANTILES,
            [0.0 if own else m.min for m in groups],
            [m.max for m in groups],
        )
        for m, row in zip(groups, table.tolist(), strict=True):
            for q, value in zip(QUANTILES, row, strict=True):
                m.cached[(own, q)] = None if value != value else value  # NaN: empty


def cover(
    since_ns: int | None, until_ns: int | None, widths: Sequence[int]
) -> tuple[list[tuple[int, int | None, int | None]], list[tuple[int, int]]]:
    """Split ``[since, until)`` into whole buckets of ``widths`` (seconds, largest first):
    ``(level, first bucket, end bucket)`` ranges (None: open), and the leftover raw ranges
    (epoch ns) at the ends, each shorter than the last width."""
    parts: list[tuple[int, int | None, int | None]] = []
    raw: list[tuple[int, int]] = []

    def split(lo: int | None, hi: int | None, level: int) -> None:
        if lo is not None and hi is not None and lo >= hi:
            return
        if level == len(widths):
            assert lo is not None and hi is not None
            raw.append((lo, hi))
            return
        width = widths[level] * _NS
        first = None if lo is None else -(-lo // width) * width
        last = None if hi is None else hi // width * width
        if first is not None and last is not None and first >= last:
            split(lo, hi, level + 1)
            return
        parts.append(
            (level, None if first is None else first // _NS, None if last is None else last // _NS)
        )
        if lo is not None and first is not None and lo < first:
            split(lo, first, level + 1)
        if hi is not None and last is not None and last < hi:
            split(last, hi, level + 1)

    split(since_ns, until_ns, 0)
    return parts, raw


def _bucket_clause(first: int | None, end: int | None) -> tuple[str, list[int]]:
    clauses, params = [], []
    if first is not None:
        clauses.append("bucket >= ?")
        params.append(first)
    if end is not None:
        clauses.append("bucket < ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), params


def raw_fold(conn: sqlite3.Connection, ranges: Iterable[tuple[int, int]]) -> Fold:
    """The fold of the traces that started in these ranges (epoch ns), from their rows."""
    fold = Fold()
    for lo, hi in ranges:
        keys = [
            r[0]
            for r in conn.execute(
                "SELECT trace_key FROM traces WHERE start_time >= ? AND start_time < ?", (lo, hi)
            )
        ]
        if keys:
            refold(conn, keys, fold)
    return fold


def gather(
    conn: sqlite3.Connection,
    dims: Sequence[int],
    since_ns: int | None,
    until_ns: int | None,
    *,
    by_bucket: int | None = None,
    keys: Iterable[str] | None = None,
) -> dict[Any, Merged]:
    """Merged rollups of one dimension over a window, by key.

    ``dims`` are the same dimension at decreasing bucket widths (``DIM_USER_DAY``,
    ``DIM_USER``); the window is covered by the largest. ``by_bucket`` (seconds) groups by
    time instead of key (bucket start, rounded down to it). ``keys`` restricts to some keys.
    """
    widths = [WIDTH_S[d] for d in dims]
    parts, raw = cover(since_ns, until_ns, widths)
    wanted = None if keys is None else set(keys)
    group_sql = "key" if by_bucket is None else f"bucket - bucket % {int(by_bucket)}"
    out: dict[Any, Merged] = {}
    bin_groups: list[Any] = []
    run_blobs: list[bytes | None] = []
    self_blobs: list[bytes | None] = []
    for level, first, end in parts:
        where, params = _bucket_clause(first, end)
        rows = conn.execute(
            f"SELECT {group_sql} AS g, {_SUM_SQL}, MIN(run_min), MAX(run_max) FROM rollups "
            f"WHERE dim = ?{where} GROUP BY g",
            [dims[level], *params],
        ).fetchall()
        for row in rows:
            if wanted is not None and row[0] not in wanted:
                continue
            merged = out.get(row[0])
            if merged is None:
                merged = out[row[0]] = Merged()
                merged.sums = dict(zip(ROLLUP_SUMS, row[1:-2], strict=True))
            else:
                sums = merged.sums
                for name, value in zip(ROLLUP_SUMS, row[1:-2], strict=True):
                    sums[name] += value
            merged.bound(row[-2], row[-1])
        with_self = dims[level] == DIM_KIND  # only span kinds have self-time bins
        blob_rows = conn.execute(
            f"SELECT {group_sql} AS g, run_bins{', self_bins' if with_self else ''} "
            f"FROM rollups WHERE dim = ?{where} AND run_bins IS NOT NULL",
            [dims[level], *params],
        ).fetchall()
        if wanted is not None:
            blob_rows = [r for r in blob_rows if r[0] in wanted]
        if blob_rows:
            columns = list(zip(*blob_rows, strict=True))
            bin_groups.extend(columns[0])
            run_blobs.extend(columns[1])
            self_blobs.extend(columns[2] if with_self else [None] * len(blob_rows))
    runs = sketch.merge_many(bin_groups, run_blobs)
    selfs = sketch.merge_many(bin_groups, self_blobs)
    for g, merged in out.items():
        merged.run = runs.get(g)
        merged.self = selfs.get(g)
    if raw:
        _add_raw(out, raw_fold(conn, raw), dims[-1], by_bucket, wanted)
    precompute(out)
    return out


def _add_raw(
    out: dict[Any, Merged],
    fold: Fold,
    dim: int,
    by_bucket: int | None,
    wanted: set[str] | None,
) -> None:
    extra: dict[Any, list[Acc]] = {}
    for (row_dim, bucket, key), acc in fold.rows.items():
        if row_dim != dim:
            continue
        group: Any = key if by_bucket is None else bucket - bucket % by_bucket
        if wanted is not None and group not in wanted:
            continue
        extra.setdefault(group, []).append(acc)
    for group, accs in extra.items():
        merged = out.get(group)
        if merged is None:
            merged = out[group] = Merged()
        run_bins: dict[int, int] = {}
        self_bins: dict[int, int] = {}
        for acc in accs:
            for name in ROLLUP_SUMS:
                merged.sums[name] += getattr(acc, name)
            merged.bound(acc.run_min, acc.run_max)
            for bin_key, count in acc.run_bins.items():
                run_bins[bin_key] = run_bins.get(bin_key, 0) + count
            for bin_key, count in acc.self_bins.items():
                self_bins[bin_key] = self_bins.get(bin_key, 0) + count
        if run_bins:
            merged.run = sketch.add_bins(merged.run, run_bins)
        if self_bins:
            merged.self = sketch.add_bins(merged.self, self_bins)
