"""A collecting exporter: every finished trace, kept in memory for assertions."""

from __future__ import annotations

import threading

from agentos_obs.tracing._spans import Span, SpanKind, Trace

__all__ = ["InMemoryExporter"]


class InMemoryExporter:
    """Keeps every trace the tracer exports, in export order; safe to share between threads.

    ``tracer.add_exporter(exporter)``, run the code under test, then read ``traces`` or
    ``spans`` (copies: later exports do not change a list already read). The lookups that
    expect exactly one match (``trace``, ``span``) raise ``AssertionError`` with what was
    found instead, so a test fails with a readable message.
    """

    queued = True  # export() only appends: a tracer calls it on the ending thread

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: list[Trace] = []

    def export(self, trace: Trace) -> None:
        with self._lock:
            self._traces.append(trace)

    def clear(self) -> None:
        """Forget every trace collected so far."""
        with self._lock:
            self._traces.clear()

    @property
    def traces(self) -> list[Trace]:
        """The traces exported so far, oldest first."""
        with self._lock:
            return list(self._traces)

    @property
    def spans(self) -> list[Span]:
        """Every span of every trace exported so far, trace by trace."""
        return [span for trace in self.traces for span in trace.spans]

    @property
    def trace(self) -> Trace:
        """The one trace exported so far."""
        traces = self.traces
        if len(traces) != 1:
            raise AssertionError(f"expected one trace, got {len(traces)}: {_names(traces)}")
        return traces[0]

    def find_spans(self, name: str | None = None, kind: SpanKind | None = None) -> list[Span]:
        """The spans with this name and/or kind (all spans when neither is given)."""
        return [
            span
            for span in self.spans
            if (name is None or span.name == name) and (kind is None or span.kind is kind)
        ]

    def span(self, name: str) -> Span:
        """The one span called ``name``."""
        found = self.find_spans(name)
        if len(found) != 1:
            names = sorted({span.name for span in self.spans})
            raise AssertionError(f"expected one span {name!r}, got {len(found)}; spans: {names}")
        return found[0]

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)

    def __repr__(self) -> str:
        return f"InMemoryExporter({len(self)} traces)"


def _names(traces: list[Trace]) -> list[str]:
    return [trace.name or (trace.root_span.name if trace.root_span else "?") for trace in traces]
