"""Trace exporters: OTLP (extra ``otel``, in :mod:`agentos_obs.exporters.otlp`), JSON lines,
console, and :class:`QueuedExporter`, which runs any ``fn(trace)`` off the app's thread.

Every exporter receives the sealed :class:`~agentos_obs.tracing.TraceRecord` of a finished
trace and reads only records. The queued ones (JSONL, OTLP, ``QueuedExporter``, the SQLite
store) encode each trace on its own — one that cannot be encoded is dropped alone and
counted — and are flushed at normal interpreter exit within ``AGENTOS_OBS_EXIT_TIMEOUT_S``
seconds in all (default 5).
"""

from __future__ import annotations

from agentos_obs._internal.batching import (
    DEFAULT_EXIT_TIMEOUT_S,
    EXIT_TIMEOUT_ENV,
    QueuedExporter,
)
from agentos_obs.exporters.console import ConsoleExporter, format_trace
from agentos_obs.exporters.jsonl import JSONLExporter

__all__ = [
    "DEFAULT_EXIT_TIMEOUT_S",
    "EXIT_TIMEOUT_ENV",
    "ConsoleExporter",
    "JSONLExporter",
    "QueuedExporter",
    "format_trace",
]
