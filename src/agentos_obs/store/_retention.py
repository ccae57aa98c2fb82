"""Retention of the span store: delete old traces in short transactions, give the space back.

A :class:`Pruning` is one retention run. It deletes the traces older than ``max_age_days``,
then the oldest ones until the data takes at most ``max_bytes``, ``chunk`` traces per
transaction: their rollup facts are folded back out, their spans (one key range each),
members and rows deleted. Then ``PRAGMA incremental_vacuum`` returns the freed pages to
the file system, ``vacuum_pages`` at a time, and the WAL is truncated. :meth:`Pruning.run`
works until a deadline and can be called again, so the writer thread runs it in slices
between batches and the app's spans never wait behind it.

Python's ``execute`` steps a statement once, and ``incremental_vacuum`` frees one page per
step: the pragma goes through ``executescript``, which runs it to the end.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

from agentos_obs.store._ingest import refold
from agentos_obs.store._rollups import SEQ_BITS, SEQ_MASK, Fold
from agentos_obs.store._schema_v3 import MEMBER_AGENT, MEMBER_MODEL

__all__ = ["Pruning", "used_bytes"]


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the data takes (pages in use, without the free list)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _members(models: str | None, agents: str | None) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for dim, text in ((MEMBER_MODEL, models), (MEMBER_AGENT, agents)):
        if text:
            try:
                out.extend((dim, str(name)) for name in json.loads(text))
            except ValueError:
                continue
    return out


class Pruning:
    """One retention run (see the module docstring)."""

    def __init__(
        self,
        max_age_days: float | None,
        max_bytes: int | None,
        *,
        chunk: int = 1000,
        vacuum_pages: int = 4096,
        now_ns: int | None = None,
    ) -> None:
        if max_age_days is not None and max_age_days < 0:
            raise ValueError(f"max_age_days must be >= 0, got {max_age_days!r}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        now = time.time_ns() if now_ns is None else now_ns
        self.cutoff = None if max_age_days is None else now - int(max_age_days * 86_400 * 1e9)
        self.max_bytes = max_bytes
        self.chunk = max(1, int(chunk))
        self.vacuum_pages = max(1, int(vacuum_pages))
        self.deleted_traces = 0
        self.deleted_spans = 0
        self._reported = 0
        self._phase = "age" if self.cutoff is not None else "size"

    @property
    def done(self) -> bool:
        return self._phase == "done"

    def take_deleted(self) -> int:
        """Traces deleted since the last call (for the writer's counters)."""
        new, self._reported = self.deleted_traces - self._reported, self.deleted_traces
        return new

    def run(self, conn: sqlite3.Connection, deadline: float | None) -> bool:
        """Work until done or ``deadline`` (``time.monotonic()``); True when done."""
        while not self.done:
            self._step(conn)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self.done

    def result(self, conn: sqlite3.Connection) -> dict[str, int]:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return {
            "deleted_traces": self.deleted_traces,
            "deleted_spans": self.deleted_spans,
            "size_bytes": used_bytes(conn),
            "file_bytes": int(pages * size),
        }

    def _step(self, conn: sqlite3.Connection) -> None:
        if self._phase == "age":
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT trace_key FROM traces WHERE start_time < ? ORDER BY start_time LIMIT ?",
                    (self.cutoff, self.chunk),
                )
            ]
            if keys:
                self._delete(conn, keys)
            else:
                self._phase = "size"
        elif self._phase == "size":
            used = used_bytes(conn)
            if self.max_bytes is None or used <= self.max_bytes:
                self._phase = "vacuum"
                return
            total = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
            if total == 0:
                self._phase = "vacuum"
                return
            # In proportion to the excess, plus a margin: pages of the indexes empty out
            # more slowly than the rows do.
            wanted = max(1, math.ceil(total * (used - self.max_bytes) / used * 1.1))
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT trace_key FROM traces ORDER BY start_time LIMIT ?",
                    (min(wanted, self.chunk),),
                )
            ]
            self._delete(conn, keys)
        elif self._phase == "vacuum":
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            incremental = conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
            if free and incremental:
                conn.executescript(f"PRAGMA incremental_vacuum({self.vacuum_pages});")
                return
            if self.deleted_traces:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._phase = "done"

    def _delete(self, conn: sqlite3.Connection, keys: list[int]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            fold = Fold(sign=-1)
            spans = refold(conn, keys, fold)
            placeholders = ", ".join("?" * len(keys))
            members: list[tuple[Any, ...]] = []
            for trace_key, models, agents in conn.execute(
                f"SELECT trace_key, models, agents FROM traces WHERE trace_key IN ({placeholders})",
                keys,
            ):
                members.extend((dim, name, trace_key) for dim, name in _members(models, agents))
            conn.executemany(
                "DELETE FROM trace_members WHERE dim = ? AND key = ? AND trace_key = ?", members
            )
            conn.executemany(
                "DELETE FROM spans WHERE span_key BETWEEN ? AND ?",
                [(k << SEQ_BITS, (k << SEQ_BITS) | SEQ_MASK) for k in keys],
            )
            conn.execute(f"DELETE FROM traces WHERE trace_key IN ({placeholders})", keys)
            fold.write(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.deleted_traces += len(keys)
        self.deleted_spans += spans
