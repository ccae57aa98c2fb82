"""SQLite schema of the span store, its version and its migrations.

The version lives in the ``schema_migrations`` table (one row per applied migration), so a
database says which code wrote it and a newer database is refused by older code instead of
being misread. Migrations run in one ``BEGIN IMMEDIATE`` transaction: several processes
opening a new file at the same time serialise there, and the second finds the work done.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentos_obs.errors import ConfigurationError
from agentos_obs.store._schema_v3 import migrate_v3

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "apply_migrations", "read_version"]


@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``: an SQL script or a function."""

    version: int
    description: str
    script: str | Callable[[sqlite3.Connection], None]


# Times are epoch nanoseconds (like Span.start_time); durations and latencies milliseconds.
# Usage columns on spans follow the innermost-only rule: counts_usage = 1 marks the spans
# whose tokens and cost count, so sums never double count a parent and its LLM call;
# llm_call = 1 marks each LLM call attempt (those with usage, and failed calls without).
_V1 = """
CREATE TABLE traces (
    trace_id           TEXT PRIMARY KEY,
    name               TEXT NOT NULL DEFAULT '',
    service_name       TEXT,
    start_time         INTEGER NOT NULL,
    end_time           INTEGER,
    duration_ms        REAL NOT NULL DEFAULT 0,
    status             TEXT NOT NULL,
    root_span_id       TEXT,
    root_kind          TEXT,
    remote_parent_id   TEXT,    -- the root's parent in another service (distributed trace)
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
    attributes         TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE spans (
    trace_id           TEXT NOT NULL,
    span_id            TEXT NOT NULL,
    parent_id          TEXT,
    name               TEXT NOT NULL DEFAULT '',
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    start_time         INTEGER NOT NULL,
    end_time           INTEGER,
    duration_ms        REAL NOT NULL DEFAULT 0,
    latency_ms         REAL NOT NULL DEFAULT 0,   -- caller-measured LLM latency if given
    model_name         TEXT,
    provider           TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL,                       -- NULL: no known price
    counts_usage       INTEGER NOT NULL DEFAULT 0,
    llm_call           INTEGER NOT NULL DEFAULT 0, -- one LLM call, with usage or failed
    agent_name         TEXT,                       -- nearest enclosing agent span
    attributes         TEXT NOT NULL DEFAULT '{}',
    events             TEXT NOT NULL DEFAULT '[]',
    UNIQUE (trace_id, span_id)
);

CREATE INDEX traces_by_start ON traces (start_time);
CREATE INDEX traces_by_status ON traces (status, start_time);
CREATE INDEX traces_by_user ON traces (user_id, start_time);
CREATE INDEX traces_by_session ON traces (session_id, start_time);
CREATE INDEX traces_by_cost ON traces (cost_usd);
CREATE INDEX traces_by_duration ON traces (duration_ms);
CREATE INDEX spans_usage_by_start ON spans (start_time) WHERE counts_usage = 1;
CREATE INDEX spans_calls_by_start ON spans (start_time) WHERE llm_call = 1;
CREATE INDEX spans_agents_by_start ON spans (start_time) WHERE kind = 'agent';
CREATE INDEX spans_by_model ON spans (model_name, trace_id) WHERE model_name IS NOT NULL;
CREATE INDEX spans_by_agent ON spans (agent_name, trace_id) WHERE kind = 'agent';
"""

# v2: the cost status of each call (SpanRecord.cost_status) and the trace counters of the
# rollup that v1 lacked. Rows written by v1 get what can be told from their columns: a call
# with usage is priced or unpriced by whether it has a cost, a call without usage (a failed
# call) is no_usage; v1 wrote no estimated usage. v1 counted only calls with usage in
# traces.llm_calls; calls without usage are added, as every call counts since v2.
_V2 = """
-- priced, unpriced, no_usage or estimated; NULL for a span that is not a call
ALTER TABLE spans ADD COLUMN cost_status TEXT;
ALTER TABLE traces ADD COLUMN no_usage_llm_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN estimated_llm_calls INTEGER NOT NULL DEFAULT 0;

UPDATE spans SET cost_status = CASE
    WHEN counts_usage = 0 THEN 'no_usage'
    WHEN cost_usd IS NULL THEN 'unpriced'
    ELSE 'priced' END
WHERE llm_call = 1 OR counts_usage = 1;

UPDATE traces SET no_usage_llm_calls = (
    SELECT COUNT(*) FROM spans s
    WHERE s.trace_id = traces.trace_id AND s.cost_status = 'no_usage')
WHERE trace_id IN (SELECT trace_id FROM spans WHERE cost_status = 'no_usage');

UPDATE traces SET llm_calls = llm_calls + no_usage_llm_calls WHERE no_usage_llm_calls > 0;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "traces and spans with the indexes of the query API", _V1),
    Migration(2, "cost status of each call; no-usage and estimated call counts per trace", _V2),
    Migration(
        3,
        "spans written live (running and incomplete traces), clustered by trace; rollups "
        "with percentile sketches; trace members; writers",
        migrate_v3,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
)
"""


def read_version(conn: sqlite3.Connection) -> int:
    """Schema version of the database behind ``conn`` (0: empty or not ours yet)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _check_sequence(migrations: Sequence[Migration]) -> None:
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise ValueError("migrations must be numbered 1, 2, 3... in order")


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to the last version in ``migrations``; return that version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). A database written by a
    newer version raises ConfigurationError rather than being modified.
    """
    _check_sequence(migrations)
    target = migrations[-1].version if migrations else 0
    version = read_version(conn)
    if version == target:
        return version  # the common case: no write lock taken
    if version > target:
        raise ConfigurationError(
            f"the database schema is version {version}, newer than this agentos-obs "
            f"understands ({target}): upgrade agentos-obs to read it"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        version = read_version(conn)  # another process may have migrated meanwhile
        for migration in migrations[version:]:
            if callable(migration.script):
                migration.script(conn)
            else:
                for statement in _statements(migration.script):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time_ns()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return target


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; split on complete statements.
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
