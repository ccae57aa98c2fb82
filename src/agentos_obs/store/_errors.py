"""Errors of the store's read side: what the CLI and the dashboard turn into exit codes and
HTTP answers (the store itself knows neither)."""

from __future__ import annotations

from pathlib import Path

from agentos_obs.errors import AgentOSObsError

__all__ = ["InvalidQuery", "StoreError", "StoreNotFound"]


class StoreError(AgentOSObsError):
    """The store cannot answer: the file is missing, not a span store, of a newer schema,
    corrupt, or a query argument is out of range. The message is one line, for a person."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class StoreNotFound(StoreError):
    """There is no file at the store's path (reading never creates one)."""


class InvalidQuery(StoreError, ValueError):
    """A query argument the store cannot use (a bad time, cursor, limit or offset): the
    caller's mistake, not the store's (the CLI exits 2, the dashboard answers 400)."""
