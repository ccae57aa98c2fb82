"""The "never break the host" guard, seen from a test suite.

Every failure of agentos-obs on the app's path is caught, logged once and counted, and data
dropped on purpose (a full queue, a bounded buffer) is counted too. A test suite reads those
counts to assert that nothing failed, and turns on strict mode so an internal failure raises
instead of being swallowed (``AGENTOS_OBS_STRICT=1`` does the same for a whole process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agentos_obs._internal import guard as _guard

__all__ = [
    "dropped_counts",
    "failure_counts",
    "is_strict",
    "reset_counts",
    "set_strict",
    "strict_mode",
]


def failure_counts() -> dict[str, int]:
    """Internal failures caught so far, by component (``"exporter:JSONLExporter"``, ...)."""
    return _guard.failure_counts()


def dropped_counts() -> dict[str, int]:
    """Items dropped on purpose so far, by component (``"store.queue"``, ...)."""
    return _guard.dropped_counts()


def reset_counts() -> None:
    """Forget both counts, and which failures were already logged (each logs once again)."""
    _guard.reset_counts()


def set_strict(enabled: bool) -> None:
    """Strict mode re-raises internal failures instead of swallowing them."""
    _guard.set_strict(enabled)


def is_strict() -> bool:
    return _guard.is_strict()


@contextmanager
def strict_mode(enabled: bool = True) -> Iterator[None]:
    """Strict mode on (or off) inside the block, then back to what it was."""
    before = _guard.is_strict()
    _guard.set_strict(enabled)
    try:
        yield
    finally:
        _guard.set_strict(before)
