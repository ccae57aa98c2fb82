"""One guard for "never break the host".

Everything on the hot path (callbacks, span end, processors, exporters, log handlers) runs
its own failures through :func:`report`: the failure is counted, logged once per
(component, exception type) to the ``agentos_obs`` logger, and swallowed — unless strict
mode is on (the test suite turns it on), in which case it is re-raised so bugs surface.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from types import TracebackType

__all__ = [
    "Guard",
    "count_drop",
    "dropped_counts",
    "failure_counts",
    "is_strict",
    "report",
    "reset_counts",
    "set_strict",
]

logger = logging.getLogger("agentos_obs")

_lock = threading.Lock()
_failures: Counter[str] = Counter()
_drops: Counter[str] = Counter()
_logged: set[tuple[str, str]] = set()
_strict = os.environ.get("AGENTOS_OBS_STRICT", "").lower() in ("1", "true", "yes")


def set_strict(enabled: bool) -> None:
    """Re-raise internal failures instead of swallowing them (for test suites)."""
    global _strict
    _strict = enabled


def is_strict() -> bool:
    return _strict


def report(component: str, exc: BaseException, *, reraise_in_strict: bool = True) -> None:
    """Count and log (once per component and exception type) an internal failure.

    Re-raises ``exc`` in strict mode unless ``reraise_in_strict`` is false (used where the
    failure is the behaviour under test, e.g. a user's exporter that raises on purpose).
    """
    key = (component, type(exc).__qualname__)
    with _lock:
        _failures[component] += 1
        first = key not in _logged
        if first:
            _logged.add(key)
    if first:
        logger.warning(
            "agentos_obs: %s failed (%s: %s); further failures of this kind are counted, "
            "not logged",
            component,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
    if _strict and reraise_in_strict:
        raise exc


def count_drop(component: str, n: int = 1, reason: str = "", *, log: bool = True) -> None:
    """Count data dropped on purpose (full queue, bounded buffer); log the first drop
    (``log=False`` when the cause is logged already, e.g. by :func:`report`)."""
    with _lock:
        first = _drops[component] == 0
        _drops[component] += n
    if first and log:
        logger.warning(
            "agentos_obs: %s dropped data%s; further drops are counted, not logged",
            component,
            f" ({reason})" if reason else "",
        )


def failure_counts() -> dict[str, int]:
    with _lock:
        return dict(_failures)


def dropped_counts() -> dict[str, int]:
    with _lock:
        return dict(_drops)


def reset_counts() -> None:
    """Forget counts and the log-once memory (tests)."""
    with _lock:
        _failures.clear()
        _drops.clear()
        _logged.clear()


class Guard:
    """``with Guard("component"):`` swallows and reports an ``Exception`` raised inside.

    ``BaseException`` (KeyboardInterrupt, SystemExit, CancelledError) always propagates.
    """

    __slots__ = ("component",)

    def __init__(self, component: str) -> None:
        self.component = component

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report(self.component, exc)
        return True
