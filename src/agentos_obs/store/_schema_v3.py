"""Schema version 3 of the span store, and the migration to it from versions 1 and 2.

What changes, and why (issue 14: ten million spans, written live):

* ``traces`` gets an integer key (``trace_key``, allocated in write order) and ``spans`` is
  clustered by it: ``span_key = trace_key << 24 | seq``. A trace's spans are one range of
  the table's own B-tree, so storing a span touches no index on a random text key, and
  reading or exporting a trace is a range scan. The 11 indexes of version 2 become 5 on
  ``traces`` (one row per trace, not per span): by id, start, status, user and session
  (cost and duration, random keys that every write moved, are gone: a list sorted by
  them sorts the traces of its window).
* A trace is written while it runs: ``status`` is ``running`` until it ends, and
  ``incomplete`` when it never did (its process died, or no span ended for a while).
  ``writer_id`` names the process that writes it (``writers``), ``folded``/``counted`` say
  how much of it the rollups hold.
* ``rollups`` (see ``_rollups.py``), ``trace_members`` (the models and agents of each
  trace, for the list's filters) and ``store_meta`` (a write counter, the pages' change
  marker) are new. ``spans.self_ms`` is each span's self time.

Every column of versions 1 and 2 keeps its name and meaning (``SELECT`` statements written
for them keep working); ``spans.latency_ms`` may now be NULL for a span that is not a call.
The migration copies every row (the upgrade of a 10M-span file is a one-off of minutes),
computes self times, members and rollups from the copied rows, and runs in the one
transaction ``apply_migrations`` opens: a failure leaves the old file as it was.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

from agentos_obs.store._rollups import (
    FOLD_COLUMNS,
    SEQ_BITS,
    SEQ_MASK,
    Fold,
    register_functions,
)
from agentos_obs.tracing import union_ms

__all__ = ["FINISHED_STATUSES", "MEMBER_AGENT", "MEMBER_MODEL", "migrate_v3"]

FINISHED_STATUSES = ("ok", "error", "timeout", "cancelled")
MEMBER_MODEL, MEMBER_AGENT = 1, 2

_V2_TRACE_COLUMNS = (
    "trace_id, name, service_name, start_time, end_time, duration_ms, status, root_span_id, "
    "root_kind, remote_parent_id, user_id, session_id, span_count, error_count, llm_calls, "
    "unpriced_llm_calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens, cost_usd, attributes, no_usage_llm_calls, estimated_llm_calls"
)
_V2_SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, status, start_time, end_time, duration_ms, "
    "latency_ms, model_name, provider, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_usd, counts_usage, llm_call, agent_name, "
    "attributes, events, cost_status"
)

_TABLES = """
CREATE TABLE traces_v3 (
    trace_key          INTEGER PRIMARY KEY,
    trace_id           TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL DEFAULT '',
    service_name       TEXT,
    start_time         INTEGER NOT NULL,
    end_time           INTEGER,
    duration_ms        REAL NOT NULL DEFAULT 0,
    status             TEXT NOT NULL,   -- ok error timeout cancelled running incomplete
    root_span_id       TEXT,
    root_kind          TEXT,
    remote_parent_id   TEXT,
    user_id            TEXT,
    session_id         TEXT,
    span_count         INTEGER NOT NULL DEFAULT 0,
    error_count        INTEGER NOT NULL DEFAULT 0,
    llm_calls          INTEGER NOT NULL DEFAULT 0,
    unpriced_llm_calls INTEGER NOT NULL DEFAULT 0,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL NOT NULL DEFAULT 0,
    attributes         TEXT NOT NULL DEFAULT '{}',
    no_usage_llm_calls INTEGER NOT NULL DEFAULT 0,
    estimated_llm_calls INTEGER NOT NULL DEFAULT 0,
    models             TEXT,                        -- JSON array, NULL: none
    agents             TEXT,                        -- JSON array, NULL: none
    writer_id          INTEGER,                     -- writers.writer_id writing it live
    updated_at         INTEGER,                     -- when spans of it were last written
    folded             INTEGER NOT NULL DEFAULT -1, -- seq of the last span in the rollups
    counted            INTEGER NOT NULL DEFAULT 0   -- 1: its trace-level facts are in them
);

CREATE TABLE spans_v3 (
    span_key           INTEGER PRIMARY KEY,         -- trace_key << 24 | seq
    trace_id           TEXT NOT NULL,
    span_id            TEXT NOT NULL,
    parent_id          TEXT,
    name               TEXT NOT NULL DEFAULT '',
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    start_time         INTEGER NOT NULL,
    end_time           INTEGER,
    duration_ms        REAL NOT NULL DEFAULT 0,
    latency_ms         REAL,                        -- of a call: caller-measured or duration
    model_name         TEXT,
    provider           TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL,
    counts_usage       INTEGER NOT NULL DEFAULT 0,
    llm_call           INTEGER NOT NULL DEFAULT 0,
    agent_name         TEXT,
    attributes         TEXT NOT NULL DEFAULT '{}',
    events             TEXT NOT NULL DEFAULT '[]',
    cost_status        TEXT,
    self_ms            REAL                         -- duration minus its children's union
);

CREATE TABLE rollups (
    dim                INTEGER NOT NULL,
    bucket             INTEGER NOT NULL,            -- epoch seconds, start of the bucket
    key                TEXT NOT NULL,
    spans              INTEGER NOT NULL DEFAULT 0,
    traces             INTEGER NOT NULL DEFAULT 0,
    calls              INTEGER NOT NULL DEFAULT 0,
    unpriced           INTEGER NOT NULL DEFAULT 0,
    no_usage           INTEGER NOT NULL DEFAULT 0,
    estimated          INTEGER NOT NULL DEFAULT 0,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL NOT NULL DEFAULT 0,
    runs               INTEGER NOT NULL DEFAULT 0,
    errors             INTEGER NOT NULL DEFAULT 0,
    run_sum            REAL NOT NULL DEFAULT 0,
    run_min            REAL,
    run_max            REAL,
    run_bins           BLOB,                        -- DDSketch bins (store/_sketch.py)
    self_sum           REAL NOT NULL DEFAULT 0,
    self_bins          BLOB,
    sessions_hll       BLOB,                        -- HyperLogLog registers (store/_hll.py)
    PRIMARY KEY (dim, bucket, key)                  -- a window's rows are one range
) WITHOUT ROWID;

CREATE TABLE trace_members (
    dim                INTEGER NOT NULL,            -- 1 model (any span), 2 agent (span)
    key                TEXT NOT NULL,
    trace_key          INTEGER NOT NULL,
    PRIMARY KEY (dim, key, trace_key)
) WITHOUT ROWID;

CREATE TABLE writers (
    writer_id          INTEGER PRIMARY KEY,
    pid                INTEGER NOT NULL,
    host               TEXT NOT NULL,
    started_at         INTEGER NOT NULL
);

CREATE TABLE store_meta (
    name               TEXT PRIMARY KEY,
    value              INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (name, value) VALUES ('writes', 0);
"""

_INDEXES = """
CREATE INDEX traces_by_start ON traces (start_time);
CREATE INDEX traces_by_status ON traces (status, start_time);
CREATE INDEX traces_by_user ON traces (user_id, start_time);
CREATE INDEX traces_by_session ON traces (session_id, start_time);
CREATE INDEX spans_long_input ON spans (span_key) WHERE llm_call = 1 AND input_tokens > 32000;
"""


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def migrate_v3(conn: sqlite3.Connection) -> None:
    """Version 2 (or a fresh file at version 2) to version 3, inside the caller's transaction."""
    register_functions(conn)
    _run(conn, _TABLES)
    conn.execute(
        f"INSERT INTO traces_v3 (trace_key, {_V2_TRACE_COLUMNS}, counted) "
        f"SELECT ROW_NUMBER() OVER (ORDER BY start_time, trace_id), {_V2_TRACE_COLUMNS}, 0 "
        "FROM traces ORDER BY start_time, trace_id"
    )
    # Spans whose trace row is missing (never written by this package, but possible in a
    # file edited by hand) keep a trace of their own rather than being dropped.
    conn.execute(
        "INSERT INTO traces_v3 (trace_key, trace_id, name, start_time, end_time, status) "
        "SELECT (SELECT COALESCE(MAX(trace_key), 0) FROM traces_v3) "
        "+ ROW_NUMBER() OVER (ORDER BY MIN(start_time)), trace_id, '', MIN(start_time), "
        "MAX(end_time), 'incomplete' FROM spans "
        "WHERE trace_id NOT IN (SELECT trace_id FROM traces) GROUP BY trace_id"
    )
    too_big = conn.execute(
        "SELECT trace_id FROM spans GROUP BY trace_id HAVING COUNT(*) > ? LIMIT 1", (SEQ_MASK,)
    ).fetchone()
    if too_big is not None:
        raise ValueError(f"trace {too_big[0]} has more than {SEQ_MASK} spans")
    conn.execute(
        f"INSERT INTO spans_v3 (span_key, {_V2_SPAN_COLUMNS}, self_ms) "
        f"SELECT (t.trace_key << {SEQ_BITS}) + ROW_NUMBER() OVER "
        "(PARTITION BY s.trace_id ORDER BY s.start_time, s.rowid) - 1, "
        + ", ".join(f"s.{c.strip()}" for c in _V2_SPAN_COLUMNS.split(","))
        + ", s.duration_ms FROM spans s JOIN traces_v3 t ON t.trace_id = s.trace_id ORDER BY 1"
    )
    conn.execute("DROP TABLE spans")
    conn.execute("DROP TABLE traces")
    conn.execute("ALTER TABLE traces_v3 RENAME TO traces")
    conn.execute("ALTER TABLE spans_v3 RENAME TO spans")
    _run(conn, _INDEXES)
    backfill(conn)


_BACKFILL_CHUNK = 2000


def backfill(conn: sqlite3.Connection) -> None:
    """Self times, members, models/agents lists and rollups of every stored trace, from its
    span rows (the migration's second half; linear in the number of spans)."""
    fold = Fold()
    last = 0
    columns = ", ".join(FOLD_COLUMNS)
    while True:
        traces = conn.execute(
            "SELECT trace_key, start_time, duration_ms, status, user_id, session_id FROM traces "
            "WHERE trace_key > ? ORDER BY trace_key LIMIT ?",
            (last, _BACKFILL_CHUNK),
        ).fetchall()
        if not traces:
            break
        last = traces[-1][0]
        self_updates: list[tuple[float, int]] = []
        trace_updates: list[tuple[Any, ...]] = []
        members: list[tuple[int, str, int]] = []
        for trace_key, start, duration, status, user, session in traces:
            low = trace_key << SEQ_BITS
            rows = conn.execute(
                f"SELECT span_key, span_id, parent_id, start_time, end_time, {columns} "
                "FROM spans WHERE span_key BETWEEN ? AND ? ORDER BY span_key",
                (low, low | SEQ_MASK),
            ).fetchall()
            facts = _self_times(rows, self_updates)
            models = sorted({r[7] for r in rows if r[7]})
            agents = sorted({r[8] for r in rows if r[5] == "agent" and r[8]})
            members.extend((MEMBER_MODEL, m, trace_key) for m in models)
            members.extend((MEMBER_AGENT, a, trace_key) for a in agents)
            fold.spans(start, user, session, facts)
            finished = status in FINISHED_STATUSES
            if finished:
                calls = [f for f in facts if f[4]]
                fold.trace(
                    start,
                    duration,
                    status,
                    user,
                    session,
                    (f[2] for f in calls),
                    (f[3] for f in calls),
                )
            trace_updates.append(
                (
                    json.dumps(models) if models else None,
                    json.dumps(agents) if agents else None,
                    len(rows) - 1,
                    int(finished),
                    trace_key,
                )
            )
        conn.executemany("UPDATE spans SET self_ms = ? WHERE span_key = ?", self_updates)
        conn.executemany(
            "UPDATE traces SET models = ?, agents = ?, folded = ?, counted = ? WHERE trace_key = ?",
            trace_updates,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO trace_members (dim, key, trace_key) VALUES (?, ?, ?)", members
        )
    fold.write(conn)


def _self_times(
    rows: list[tuple[Any, ...]], updates: list[tuple[float, int]]
) -> list[tuple[Any, ...]]:
    """The fold facts of one trace's rows with each span's self time; queue the updates
    of spans whose self time is not their duration (those with children)."""
    children: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        if row[2] is not None and row[4] is not None:
            children[row[2]].append((row[3], row[4]))
    facts = []
    for row in rows:
        span_key, span_id, _parent, start, end = row[:5]
        fact = row[5:]
        kids = children.get(span_id)
        if kids and end is not None:
            clipped = [
                (max(start, lo), min(end, hi)) for lo, hi in kids if min(end, hi) > max(start, lo)
            ]
            if clipped:
                duration = fact[13] or 0.0
                own = max(0.0, duration - union_ms(clipped))
                updates.append((own, span_key))
                fact = (*fact[:-1], own)
        facts.append(fact)
    return facts
