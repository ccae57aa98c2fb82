"""Print each finished trace as a readable span tree (development, demos, debugging).

::

    trace 4bf92f35e1c0a6b2  research  1.23 s  ok  1,234 tokens  $0.0123  user=u1
    └─ agent planner  1.20 s
       ├─ llm chat  gpt-4o  820 ms  in 1,000 · out 234  $0.0123
       └─ tool search  300 ms  ERROR TimeoutError: too slow

Everything shown is read from the sealed records: the trace's rollup for the header, each
record's counted call, usage, cost and cost status for its line. Control characters in
names, attributes and errors are shown as escapes (``\\x1b``), so a span name cannot
drive the terminal (set its title, clear the screen).

Written synchronously to the stream (``sys.stdout`` by default, looked up at each trace so
pytest's capture and redirections work); lines of one trace are written together.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import TextIO

import agentos_obs.attributes as attr
from agentos_obs.exporters._input import finished_record
from agentos_obs.tracing import CostStatus, SpanRecord, SpanStatus, Trace, TraceRecord

__all__ = ["ConsoleExporter", "format_trace", "printable"]

_RESET = "\033[0m"
_DIM = "\033[2m"
_BOLD = "\033[1m"
_RED = "\033[31m"
_YELLOW = "\033[33m"
_CYAN = "\033[36m"


# C0 controls but tab, DEL and C1 controls (ESC [ ... and the 8-bit CSI), bidi overrides.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters as ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _duration(ms: float) -> str:
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def _cost(usd: float) -> str:
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        if not self.enabled or not codes:
            return text
        return "".join(codes) + text + _RESET


def _usage(record: SpanRecord, style: _Style) -> list[str]:
    parts: list[str] = []
    if record.model:
        parts.append(style(printable(record.model), _CYAN))
    usage = record.usage
    if record.counts_usage or not usage.is_empty:
        tokens = f"in {usage.input_tokens:,} · out {usage.output_tokens:,}"
        if usage.cache_read_tokens:
            tokens += f" · cache read {usage.cache_read_tokens:,}"
        if usage.cache_write_tokens:
            tokens += f" · cache write {usage.cache_write_tokens:,}"
        if usage.reasoning_tokens:
            tokens += f" · reasoning {usage.reasoning_tokens:,}"
        if not record.llm_call:
            tokens += " (counted below)"  # an outer span repeating its inner call's usage
        parts.append(tokens)
        if record.llm_call:
            parts.append(_cost(record.cost_usd) if record.cost_usd is not None else "price unknown")
    elif record.llm_call and record.cost_status is CostStatus.NO_USAGE:
        parts.append("no usage reported")
    return parts


def _status(record: SpanRecord, style: _Style) -> str:
    if record.status is SpanStatus.OK:
        return ""
    label = record.status.value.upper()
    error = record.attributes.get(attr.ERROR_TYPE)
    message = record.attributes.get(attr.ERROR_MESSAGE)
    if error or message:
        detail = f"{error}: {message}" if error and message else str(error or message)
        label = f"{label} {printable(detail[:200])}"
    color = _RED if record.failed else _YELLOW
    return style(label, color)


def _span_line(record: SpanRecord, style: _Style, show_attributes: bool) -> str:
    parts = [f"{style(record.kind.value, _DIM)} {printable(record.name)}", *_usage(record, style)]
    parts.append(_duration(record.duration_ms))
    status = _status(record, style)
    if status:
        parts.append(status)
    if show_attributes and record.attributes:
        shown = ", ".join(f"{k}={v!r}" for k, v in record.attributes.items())
        parts.append(style(printable(f"{{{shown[:300]}}}"), _DIM))
    return "  ".join(parts)


def format_trace(
    trace: TraceRecord, *, color: bool = False, show_attributes: bool = False, max_spans: int = 500
) -> str:
    """The text :class:`ConsoleExporter` prints for ``trace``."""
    style = _Style(color)
    rollup = trace.rollup
    header = [style(f"trace {printable(trace.trace_id)}", _BOLD)]
    if trace.name:
        header.append(printable(trace.name))
    header.append(_duration(trace.duration_ms))
    if trace.status is SpanStatus.OK:
        header.append(trace.status.value)
    else:
        header.append(style(trace.status.value, _RED))
    if rollup.llm_calls:
        header.append(f"{rollup.total_tokens:,} tokens")
        header.append(_cost(rollup.cost_usd))
        unknown = rollup.unpriced_llm_calls + rollup.no_usage_llm_calls
        if rollup.unpriced_llm_calls:
            header.append(f"({rollup.unpriced_llm_calls} unpriced)")
        elif unknown:
            header.append(f"({unknown} without usage)")
    if trace.user_id is not None:
        header.append(f"user={printable(trace.user_id)}")
    if trace.session_id is not None:
        header.append(f"session={printable(trace.session_id)}")
    if trace.remote_parent_id is not None:
        header.append(style(f"parent={printable(trace.remote_parent_id)}", _DIM))
    lines = ["  ".join(header)]

    spans = trace.spans
    ids = {record.span_id for record in spans}
    roots = [r for r in spans if r.parent_id not in ids or r.parent_id == r.span_id]
    roots.sort(key=lambda r: r.start_time)
    # Depth-first without recursion: agent loops can nest deeply.
    stack: list[tuple[SpanRecord, str, bool]] = [
        (record, "", i == len(roots) - 1) for i, record in enumerate(roots)
    ][::-1]
    shown = 0
    while stack:
        record, prefix, last = stack.pop()
        if shown >= max_spans:
            lines.append(f"{prefix}… {len(spans) - shown} more spans")
            break
        lines.append(
            f"{prefix}{'└─ ' if last else '├─ '}{_span_line(record, style, show_attributes)}"
        )
        shown += 1
        below = sorted(trace.children(record.span_id), key=lambda r: r.start_time)
        child_prefix = prefix + ("   " if last else "│  ")
        for i in range(len(below) - 1, -1, -1):
            stack.append((below[i], child_prefix, i == len(below) - 1))
    return "\n".join(lines)


class ConsoleExporter:
    """A tracer exporter printing each trace's span tree with tokens, cost and durations.

    Args:
        stream: where to write (default: ``sys.stdout`` at the time of each trace).
        color: ANSI colours; None = when the stream is a terminal and ``NO_COLOR`` is unset.
        show_attributes: also print each span's attributes.
        max_spans: spans printed per trace at most.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        show_attributes: bool = False,
        max_spans: int = 500,
    ) -> None:
        self._stream = stream
        self._color = color
        self.show_attributes = show_attributes
        self.max_spans = max(1, int(max_spans))
        self._lock = threading.Lock()

    def _use_color(self, stream: TextIO) -> bool:
        if self._color is not None:
            return self._color
        if os.environ.get("NO_COLOR"):
            return False
        isatty = getattr(stream, "isatty", None)
        return bool(callable(isatty) and isatty())

    def export(self, trace: TraceRecord | Trace) -> None:
        """Print ``trace`` (its record, for a live ``Trace``)."""
        record = finished_record(trace, "console")
        if record is None:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        text = format_trace(
            record,
            color=self._use_color(stream),
            show_attributes=self.show_attributes,
            max_spans=self.max_spans,
        )
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    __call__ = export
