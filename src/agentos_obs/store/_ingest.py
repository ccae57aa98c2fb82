"""One batch of the store's writer: spans as they ended, traces as they ended, in one
transaction.

Items arrive in the order the tracer produced them: a :class:`Started` when a trace's root
span starts, each span's :class:`~agentos_obs.tracing.SpanRecord` when it ends
(``on_end``), the trace's :class:`~agentos_obs.tracing.TraceRecord` when it ends
(``export``). A batch groups them by trace and, for each trace:

* finds or creates its ``traces`` row (``running`` until it ends) and the next sequence
  number of its span rows (``span_key = trace_key << 24 | seq``, so its spans stay one
  range of the table);
* writes the spans not written yet (a record's spans that the writer has already written
  live are skipped: :class:`LiveTraces` remembers them per running trace), with each span's
  self time (from the children already written, or from the record at the end);
* settles the row when the trace ended, and folds what is not yet in the rollups.

Nothing walks a span's ancestors: the work is linear in the spans of the batch.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import agentos_obs.store._rows as rows
from agentos_obs.store._rollups import FOLD_COLUMNS, SEQ_BITS, SEQ_MASK, Fold
from agentos_obs.store._rows import (
    FOLD_FROM_ROW,
    INSERT_SPAN,
    INSERT_TRACE,
    SELECT_TRACES,
    UPDATE_TRACE,
    TraceRow,
)
from agentos_obs.store._schema_v3 import MEMBER_AGENT, MEMBER_MODEL
from agentos_obs.tracing import SpanRecord, TraceRecord, union_ms

__all__ = [
    "Batch",
    "Group",
    "LiveTrace",
    "LiveTraces",
    "Started",
    "group_items",
    "mark_incomplete",
    "refold",
    "self_times",
]

_pick_facts = itemgetter(*FOLD_FROM_ROW)
_FACT_COLUMNS = ", ".join(FOLD_COLUMNS)
_IN_CHUNK = 500


class Started(NamedTuple):
    """A trace's root span started (queued by ``on_start``)."""

    trace_id: str
    name: str
    start_time: int
    remote_parent_id: str | None


Item = SpanRecord | TraceRecord | Started


class LiveTrace:
    """What the writer remembers of a trace it writes while it runs."""

    __slots__ = ("children", "keys", "stale")

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}  # span id -> span_key, of the spans written
        # Intervals of ended children whose parent has not ended yet, by parent id.
        self.children: dict[str, list[tuple[int, int]]] = {}
        self.stale: set[str] = set()  # parents written before one of their children ended

    def self_time(self, record: SpanRecord) -> float:
        """``record``'s duration minus the union of its children's intervals within it."""
        own = record.duration_ms
        intervals = self.children.pop(record.span_id, None)
        if intervals:
            start, end = record.start_time, record.end_time
            clipped = [
                (max(start, lo), min(end, hi))
                for lo, hi in intervals
                if min(end, hi) > max(start, lo)
            ]
            if clipped:
                own = max(0.0, own - union_ms(clipped))
        parent = record.parent_id
        if parent is not None:
            if parent in self.keys:
                self.stale.add(parent)  # its self time is fixed when the trace ends
            else:
                self.children.setdefault(parent, []).append((record.start_time, record.end_time))
        return own


def self_times(records: Sequence[SpanRecord]) -> dict[str, float]:
    """Each record's self time: its duration minus the union of its children's intervals
    within it (``TraceRecord.self_time_ms``, for all the records of a trace in one pass)."""
    children: dict[str, list[tuple[int, int]]] = {}
    for record in records:
        parent = record.parent_id
        if parent is not None and parent != record.span_id:
            children.setdefault(parent, []).append((record.start_time, record.end_time))
    out: dict[str, float] = {}
    for record in records:
        own = record.duration_ms
        kids = children.get(record.span_id)
        if kids:
            start, end = record.start_time, record.end_time
            clipped = [
                (max(start, lo), min(end, hi)) for lo, hi in kids if min(end, hi) > max(start, lo)
            ]
            if clipped:
                own = max(0.0, own - union_ms(clipped))
        out[record.span_id] = own
    return out


class LiveTraces:
    """The running traces the writer writes live, at most ``limit`` (the oldest forgotten
    first: a forgotten trace is deduplicated against its stored rows when it ends)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._traces: dict[str, LiveTrace] = {}

    def __len__(self) -> int:
        return len(self._traces)

    def get(self, trace_id: str) -> LiveTrace | None:
        return self._traces.get(trace_id)

    def setdefault(self, trace_id: str) -> LiveTrace:
        state = self._traces.get(trace_id)
        if state is None:
            if len(self._traces) >= self.limit:
                for old in list(self._traces)[: max(1, self.limit // 4)]:
                    del self._traces[old]
            state = self._traces[trace_id] = LiveTrace()
        return state

    def discard(self, trace_id: str) -> None:
        self._traces.pop(trace_id, None)

    def clear(self) -> None:
        self._traces.clear()


class Group:
    """The items of one trace in a batch, and what writing them did."""

    __slots__ = (
        "added",
        "ends",
        "first_seq",
        "fixed",
        "row",
        "rows",
        "spans",
        "started",
        "trace_id",
    )

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.started: Started | None = None
        self.spans: list[SpanRecord] = []
        self.ends: list[TraceRecord] = []
        self.row: TraceRow | None = None
        self.rows: list[tuple[Any, ...]] = []  # span rows written by this batch
        self.added: list[str] = []  # span ids this batch added to the live state
        self.fixed: dict[int, float] = {}  # span key -> self time corrected at the end
        self.first_seq = 0

    def reset(self) -> None:
        """Forget what a previous attempt at writing this group did."""
        self.row = None
        self.rows = []
        self.added = []
        self.fixed = {}
        self.first_seq = 0

    @property
    def items(self) -> int:
        return len(self.spans) + len(self.ends) + (self.started is not None)


def group_items(items: Iterable[Item]) -> list[Group]:
    groups: dict[str, Group] = {}
    for item in items:
        group = groups.get(item.trace_id)
        if group is None:
            group = groups[item.trace_id] = Group(item.trace_id)
        if isinstance(item, SpanRecord):
            group.spans.append(item)
        elif isinstance(item, TraceRecord):
            group.ends.append(item)
        else:
            group.started = item
    return list(groups.values())


def _range(trace_key: int) -> tuple[int, int]:
    low = trace_key << SEQ_BITS
    return low, low | SEQ_MASK


def _read_facts(
    conn: sqlite3.Connection, trace_key: int, after_seq: int, upto_seq: int = SEQ_MASK
) -> list[tuple[Any, ...]]:
    low = trace_key << SEQ_BITS
    return conn.execute(
        f"SELECT {_FACT_COLUMNS} FROM spans WHERE span_key BETWEEN ? AND ?",
        (low + after_seq + 1, low + upto_seq),
    ).fetchall()


def _call_keys(conn: sqlite3.Connection, trace_key: int) -> list[tuple[str | None, str | None]]:
    low, high = _range(trace_key)
    return conn.execute(
        "SELECT model_name, agent_name FROM spans WHERE span_key BETWEEN ? AND ? AND llm_call = 1",
        (low, high),
    ).fetchall()


class Batch:
    """Writes groups into an open transaction (see the module docstring)."""

    def __init__(self, live: LiveTraces, writer_id: int | None) -> None:
        self.live = live
        self.writer_id = writer_id
        self.spans_written = 0
        self.traces_ended = 0
        self.overflow = 0  # spans beyond 2**24 in one trace: not stored
        self.now_ns = time.time_ns()

    def reset_counts(self) -> None:
        self.spans_written = self.traces_ended = self.overflow = 0

    def write(self, conn: sqlite3.Connection, groups: Sequence[Group]) -> None:
        for group in groups:
            group.reset()
        existing = self._existing(conn, [g.trace_id for g in groups])
        next_key: int | None = None
        span_rows: list[tuple[Any, ...]] = []
        fixups: list[tuple[float, int]] = []
        for group in groups:
            row = existing.get(group.trace_id)
            if row is None:
                if next_key is None:
                    found = conn.execute("SELECT MAX(trace_key) FROM traces").fetchone()[0]
                    next_key = int(found or 0) + 1
                start = self._first_start(group)
                row = TraceRow.new(next_key, group.trace_id, start)
                next_key += 1
                seq = 0
            else:
                low, high = _range(row.key)
                last = conn.execute(
                    "SELECT MAX(span_key) FROM spans WHERE span_key BETWEEN ? AND ?", (low, high)
                ).fetchone()[0]
                seq = 0 if last is None else (last & SEQ_MASK) + 1
            group.row = row
            group.first_seq = seq
            self._write_group(conn, group, row, seq, fixups)
            span_rows.extend(group.rows)
        if span_rows:
            span_rows.sort(key=itemgetter(0))
            conn.executemany(INSERT_SPAN, span_rows)
            self.spans_written += len(span_rows)
        fold = Fold()
        if fixups:
            self._correct_folded(conn, groups, fold)
            conn.executemany("UPDATE spans SET self_ms = ? WHERE span_key = ?", fixups)
        for group in groups:
            self._fold(conn, group, fold)
        trace_rows = [g.row for g in groups if g.row is not None]
        conn.executemany(INSERT_TRACE, [r.params() for r in trace_rows if r.is_new])
        conn.executemany(
            UPDATE_TRACE, [r.params() for r in trace_rows if not r.is_new and r.changed]
        )
        members = [
            (dim, name, r.key)
            for r in trace_rows
            for dim, names in ((MEMBER_MODEL, r.models_added), (MEMBER_AGENT, r.agents_added))
            for name in names
        ]
        if members:
            conn.executemany(
                "INSERT OR IGNORE INTO trace_members (dim, key, trace_key) VALUES (?, ?, ?)",
                members,
            )
        fold.write(conn)
        conn.execute("UPDATE store_meta SET value = value + 1 WHERE name = 'writes'")

    @staticmethod
    def _existing(conn: sqlite3.Connection, trace_ids: list[str]) -> dict[str, TraceRow]:
        found: dict[str, TraceRow] = {}
        for i in range(0, len(trace_ids), _IN_CHUNK):
            chunk = trace_ids[i : i + _IN_CHUNK]
            sql = SELECT_TRACES + "(" + ", ".join("?" * len(chunk)) + ")"
            for values in conn.execute(sql, chunk):
                row = TraceRow.from_db(values)
                found[str(row.values["trace_id"])] = row
        return found

    @staticmethod
    def _first_start(group: Group) -> int:
        starts = [s.start_time for s in group.spans] + [t.start_time for t in group.ends]
        if group.started is not None:
            starts.append(group.started.start_time)
        return min(starts)

    def _write_group(
        self,
        conn: sqlite3.Connection,
        group: Group,
        row: TraceRow,
        seq: int,
        fixups: list[tuple[float, int]],
    ) -> None:
        base = row.key << SEQ_BITS
        state = self.live.get(group.trace_id)
        if group.spans and state is None:
            state = self.live.setdefault(group.trace_id)
        known: dict[str, int]
        if state is not None:
            known = state.keys
        elif group.ends and not row.is_new:
            # A part of a trace stored before (another process, an earlier run): skip the
            # spans already there, as the unique key of schema 2 did.
            low, high = _range(row.key)
            known = dict(
                conn.execute(
                    "SELECT span_id, span_key FROM spans WHERE span_key BETWEEN ? AND ?",
                    (low, high),
                ).fetchall()
            )
        else:
            known = {}
        if group.spans or group.started:
            row.values["updated_at"] = self.now_ns  # a sign of life (incomplete_after_s)
            if self.writer_id is not None:
                row.values["writer_id"] = self.writer_id  # the process writing it live
        if group.started is not None:
            started = group.started
            row.started(started.name, started.start_time, started.remote_parent_id)
        if group.spans:
            assert state is not None
            for record in group.spans:
                if record.span_id in known:
                    continue
                if seq > SEQ_MASK:
                    self.overflow += 1
                    continue
                group.rows.append(rows.span_row(record, base | seq, state.self_time(record)))
                known[record.span_id] = base | seq
                group.added.append(record.span_id)
                row.add_span(record)
                seq += 1
            if not group.ends:
                row.reopen()
        for trace in group.ends:
            own: dict[str, float] | None = None
            for record in trace.spans:
                if record.span_id in known:
                    continue
                if seq > SEQ_MASK:
                    self.overflow += 1
                    continue
                if own is None:
                    own = self_times(trace.spans)
                group.rows.append(rows.span_row(record, base | seq, own[record.span_id]))
                known[record.span_id] = base | seq
                group.added.append(record.span_id)
                row.add_span(record)
                seq += 1
            if state is not None and state.stale:
                by_id = {s.span_id: s for s in trace.spans}
                for parent in state.stale:
                    parent_record = by_id.get(parent)
                    key = known.get(parent)
                    if parent_record is not None and key is not None:
                        own_time = trace.self_time_ms(parent_record)
                        fixups.append((own_time, key))
                        group.fixed[key] = own_time
                state.stale.clear()
            row.end(trace)
            self.traces_ended += 1

    @staticmethod
    def _correct_folded(conn: sqlite3.Connection, groups: Sequence[Group], fold: Fold) -> None:
        """Self times corrected at a trace's end for spans the rollups already hold (the
        trace was declared incomplete, then went on): move their self time in the rollups."""
        for group in groups:
            row = group.row
            if row is None or not group.fixed:
                continue
            folded = int(row.values["folded"])
            stale = [key for key in group.fixed if key & SEQ_MASK <= folded]
            if not stale:
                continue
            old = conn.execute(
                f"SELECT span_key, kind, self_ms, duration_ms FROM spans "
                f"WHERE span_key IN ({', '.join('?' * len(stale))})",
                stale,
            ).fetchall()
            for key, kind, self_ms, duration in old:
                before = duration if self_ms is None else self_ms
                fold.move_self(row.values["start_time"], kind, before, group.fixed[key])

    @staticmethod
    def _fold(conn: sqlite3.Connection, group: Group, fold: Fold) -> None:
        row = group.row
        if row is None or row.is_open:
            return
        v = row.values
        folded = int(v["folded"])
        last_seq = group.first_seq + len(group.rows) - 1
        if group.rows:
            last_seq = max(last_seq, folded)
        facts: list[tuple[Any, ...]] = []
        if last_seq > folded:
            if folded + 1 >= group.first_seq:
                facts = [_pick_facts(r) for r in group.rows if (r[0] & SEQ_MASK) > folded]
                if group.fixed:  # self times corrected after these rows were built
                    facts = [
                        (*f[:-1], group.fixed[r[0]]) if r[0] in group.fixed else f
                        for f, r in zip(
                            facts,
                            [r for r in group.rows if (r[0] & SEQ_MASK) > folded],
                            strict=True,
                        )
                    ]
            else:
                facts = _read_facts(conn, row.key, folded)
            fold.spans(v["start_time"], v["user_id"], v["session_id"], facts)
            v["folded"] = last_seq
            row.changed = True
        if not v["counted"]:
            calls: Iterable[tuple[Any, ...]]
            if folded < 0:
                calls = [(f[2], f[3]) for f in facts if f[4]]
            else:
                calls = _call_keys(conn, row.key)
            calls = list(calls)
            fold.trace(
                v["start_time"],
                v["duration_ms"],
                row.status,
                v["user_id"],
                v["session_id"],
                (c[0] for c in calls),
                (c[1] for c in calls),
            )
            v["counted"] = 1
            row.changed = True

    def forget(self, groups: Sequence[Group]) -> None:
        """The batch was rolled back: the live state must not think its spans written."""
        for group in groups:
            state = self.live.get(group.trace_id)
            if state is not None:
                for span_id in group.added:
                    state.keys.pop(span_id, None)
            group.reset()

    def done(self, groups: Sequence[Group]) -> None:
        """The batch committed: traces that ended leave the live state."""
        for group in groups:
            if group.ends:
                self.live.discard(group.trace_id)


def mark_incomplete(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[str]:
    """Declare the running traces matching ``where`` incomplete, folding the spans stored
    for them into the rollups (their spans and cost stay). Returns their trace ids.

    Runs in the caller's transaction.
    """
    rows = conn.execute(
        "SELECT trace_key, trace_id, start_time, user_id, session_id, folded FROM traces "
        f"WHERE status = 'running' AND ({where})",
        params,
    ).fetchall()
    fold = Fold()
    updates = []
    for trace_key, _trace_id, start, user, session, folded in rows:
        low, high = _range(trace_key)
        last = conn.execute(
            "SELECT MAX(span_key) FROM spans WHERE span_key BETWEEN ? AND ?", (low, high)
        ).fetchone()[0]
        last_seq = folded if last is None else max(folded, last & SEQ_MASK)
        if last_seq > folded:
            fold.spans(start, user, session, _read_facts(conn, trace_key, folded, last_seq))
        updates.append((last_seq, trace_key))
    conn.executemany(
        "UPDATE traces SET status = 'incomplete', folded = ? WHERE trace_key = ?", updates
    )
    fold.write(conn)
    return [r[1] for r in rows]


def refold(conn: sqlite3.Connection, trace_keys: Sequence[int], fold: Fold) -> int:
    """Fold again what the rollups hold of these traces, from their rows: with
    ``Fold(sign=-1)`` to take it back out (retention), with a plain ``Fold()`` to answer
    for a part of a window no bucket covers. Returns their span count."""
    spans = 0
    for i in range(0, len(trace_keys), _IN_CHUNK):
        chunk = trace_keys[i : i + _IN_CHUNK]
        rows = conn.execute(
            "SELECT trace_key, start_time, duration_ms, status, user_id, session_id, folded, "
            f"counted, span_count FROM traces WHERE trace_key IN ({', '.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        for trace_key, start, duration, status, user, session, folded, counted, count in rows:
            spans += int(count or 0)
            facts = _read_facts(conn, trace_key, -1, folded) if folded >= 0 else []
            if facts:
                fold.spans(start, user, session, facts)
            if counted:
                calls = [(f[2], f[3]) for f in facts if f[4]]
                fold.trace(
                    start,
                    duration,
                    status,
                    user,
                    session,
                    (c[0] for c in calls),
                    (c[1] for c in calls),
                )
    return spans
