"""Print each finished trace as a readable span tree (development, demos, debugging).

::

    trace 4bf92f35e1c0a6b2  research  1.23 s  ok  1,234 tokens  $0.0123  user=u1
    └─ agent planner  1.20 s
       ├─ llm chat  gpt-4o  820 ms  in 1,000 · out 234  $0.0123
       └─ tool search  300 ms  ERROR TimeoutError: too slow

Written synchronously to the stream (``sys.stdout`` by default, looked up at each trace so
pytest's capture and redirections work); lines of one trace are written together.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import defaultdict
from typing import TextIO

import agentos_obs.attributes as attr
from agentos_obs.tracing._spans import Span, SpanStatus, Trace

__all__ = ["ConsoleExporter", "format_trace"]

_RESET = "\033[0m"
_DIM = "\033[2m"
_BOLD = "\033[1m"
_RED = "\033[31m"
_YELLOW = "\033[33m"
_CYAN = "\033[36m"


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


def _usage(span: Span, style: _Style) -> list[str]:
    parts: list[str] = []
    if span.model_name:
        parts.append(style(span.model_name, _CYAN))
    if span.has_usage:
        tokens = f"in {span.input_tokens:,} · out {span.output_tokens:,}"
        if span.cache_read_tokens:
            tokens += f" · cache read {span.cache_read_tokens:,}"
        if span.cache_write_tokens:
            tokens += f" · cache write {span.cache_write_tokens:,}"
        if span.reasoning_tokens:
            tokens += f" · reasoning {span.reasoning_tokens:,}"
        if not span.counts_usage:
            tokens += " (counted below)"
        parts.append(tokens)
        parts.append(_cost(span.cost_usd) if span.cost_usd is not None else "price unknown")
    return parts


def _status(span: Span, style: _Style) -> str:
    if span.status is SpanStatus.OK:
        return ""
    label = span.status.value.upper()
    error = span.attributes.get(attr.ERROR_TYPE)
    message = span.attributes.get(attr.ERROR_MESSAGE)
    if error or message:
        detail = f"{error}: {message}" if error and message else str(error or message)
        label = f"{label} {detail[:200]}"
    color = _RED if span.status in (SpanStatus.ERROR, SpanStatus.TIMEOUT) else _YELLOW
    return style(label, color)


def _span_line(span: Span, style: _Style, show_attributes: bool) -> str:
    parts = [f"{style(span.kind.value, _DIM)} {span.name}", *_usage(span, style)]
    parts.append(_duration(span.duration_ms))
    status = _status(span, style)
    if status:
        parts.append(status)
    if show_attributes and span.attributes:
        shown = ", ".join(f"{k}={v!r}" for k, v in span.attributes.items())
        parts.append(style(f"{{{shown[:300]}}}", _DIM))
    return "  ".join(parts)


def format_trace(
    trace: Trace, *, color: bool = False, show_attributes: bool = False, max_spans: int = 500
) -> str:
    """The text :class:`ConsoleExporter` prints for ``trace``."""
    style = _Style(color)
    usage = trace.usage_totals()
    header = [style(f"trace {trace.trace_id}", _BOLD)]
    if trace.name:
        header.append(trace.name)
    header.append(_duration(trace.total_duration_ms))
    if trace.status is SpanStatus.OK:
        header.append(trace.status.value)
    else:
        header.append(style(trace.status.value, _RED))
    tokens = usage["input_tokens"] + usage["output_tokens"]
    if usage["llm_calls"]:
        header.append(f"{tokens:,} tokens")
        header.append(_cost(usage["cost_usd"]))
        if usage["unpriced_llm_calls"]:
            header.append(f"({usage['unpriced_llm_calls']} unpriced)")
    if trace.user_id is not None:
        header.append(f"user={trace.user_id}")
    if trace.session_id is not None:
        header.append(f"session={trace.session_id}")
    if trace.remote_parent_id is not None:
        header.append(style(f"parent={trace.remote_parent_id}", _DIM))
    lines = ["  ".join(header)]

    spans = list(trace.spans)
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children[parent].append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: s.start_time)
    # Depth-first without recursion: agent loops can nest deeply.
    stack: list[tuple[Span, str, bool]] = [
        (span, "", i == len(children[None]) - 1) for i, span in enumerate(children[None])
    ][::-1]
    shown = 0
    while stack:
        span, prefix, last = stack.pop()
        if shown >= max_spans:
            lines.append(f"{prefix}… {len(spans) - shown} more spans")
            break
        lines.append(
            f"{prefix}{'└─ ' if last else '├─ '}{_span_line(span, style, show_attributes)}"
        )
        shown += 1
        below = children.get(span.span_id, [])
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

    def export(self, trace: Trace) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        text = format_trace(
            trace,
            color=self._use_color(stream),
            show_attributes=self.show_attributes,
            max_spans=self.max_spans,
        )
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    __call__ = export
