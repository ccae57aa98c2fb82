"""What every exporter does with what it is handed: take the sealed record, and say why an
item could not be written."""

from __future__ import annotations

from typing import Any

import agentos_obs._internal.guard as _guard
from agentos_obs._internal.redact import scrub
from agentos_obs.tracing import TraceRecord

__all__ = ["finished_record", "unencodable"]


def finished_record(trace: Any, component: str) -> TraceRecord | None:
    """The :class:`TraceRecord` to export: ``trace`` itself, or the record of a finished
    live ``Trace``. Anything else is dropped and counted under ``<component>.unencodable``
    (a caller passing an unfinished trace or another object must not break the batch)."""
    if isinstance(trace, TraceRecord):
        return trace
    record = getattr(trace, "record", None)
    if isinstance(record, TraceRecord):
        return record
    _guard.count_drop(
        f"{component}.unencodable",
        1,
        f"not a finished trace record: {type(trace).__qualname__}",
    )
    return None


def unencodable(exc: BaseException) -> str:
    """The reason logged for a trace that could not be encoded (bounded, scrubbed)."""
    try:
        detail = str(exc)
    except Exception:
        detail = ""
    detail = scrub(detail.encode("utf-8", "backslashreplace").decode("ascii", "replace"))
    if len(detail) > 160:
        detail = detail[:160] + "…"
    name = type(exc).__name__
    return f"a trace could not be encoded ({name}: {detail})" if detail else f"{name}"
