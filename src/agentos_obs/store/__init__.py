"""The embedded SQLite span store: a batched background writer, its schema and migrations,
the query API, and a read-only reader for the CLI and the dashboard."""

from __future__ import annotations

from agentos_obs.store._reader import StoreReader, resolve_db_path
from agentos_obs.store._writer import SQLiteStore, default_db_path

__all__ = ["SQLiteStore", "StoreReader", "default_db_path", "resolve_db_path"]
