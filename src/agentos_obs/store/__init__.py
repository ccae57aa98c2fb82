"""The embedded SQLite span store: a batched background writer, its schema and migrations,
the query API, and a read-only reader (with its own errors) for the CLI, the dashboard and
export."""

from __future__ import annotations

from agentos_obs.store._errors import InvalidQuery, StoreError, StoreNotFound
from agentos_obs.store._reader import MAX_SPAN_PAGE, StoreReader, resolve_db_path
from agentos_obs.store._when import parse_when
from agentos_obs.store._writer import SQLiteStore, default_db_path

__all__ = [
    "MAX_SPAN_PAGE",
    "InvalidQuery",
    "SQLiteStore",
    "StoreError",
    "StoreNotFound",
    "StoreReader",
    "default_db_path",
    "parse_when",
    "resolve_db_path",
]
