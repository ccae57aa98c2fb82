"""Which framework span is open in the caller's context: how the provider-SDK layer finds the
LangChain or LlamaIndex span a provider request belongs to.

The framework handlers never make their spans *current* (LangChain ends runs in other tasks,
so a context they set could not be reset). Instead, when a framework span starts in the
caller's context, the handler leaves a :class:`FrameworkMark` there; a request made later in
that context (the model's own call into the ``openai`` SDK, an embedding inside a retriever)
finds it with :func:`framework_span`.

When the span ends the handler calls :meth:`FrameworkMark.release`: in the context the span
started in, the mark is reset; in another one (LangChain runs some end callbacks in a task
of their own) it stays there, holding only a link to the mark of the enclosing framework
span, so a stale mark costs a few bytes, never a trace. :func:`framework_span` walks from
the innermost mark to the nearest one whose span is still open. A framework span that never
ends (a run LangChain never closes) stays visible in its context until the integration's
sweep ends it.

Where a handler runs in another context (LangChain's thread pool for handlers built with
``run_inline=False``), its mark never reaches the caller: the SDK layer then sees no framework
span and records the request on a span of its own.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentos_obs.tracing._spans import Span

__all__ = [
    "FrameworkMark",
    "clear_marks",
    "current_mark",
    "framework_span",
    "mark_framework_span",
]


class FrameworkMark:
    """A framework span left in the caller's context while it is open."""

    __slots__ = ("parent", "span", "token")

    def __init__(self, span: Span, parent: FrameworkMark | None) -> None:
        self.span: Span | None = span
        self.parent = parent
        self.token: Token[FrameworkMark | None] | None = None

    def release(self) -> None:
        """The span ended: forget it (the link to the enclosing mark stays). Ended in the
        context it started in (the usual case), the context gets back the mark it had
        before; ended elsewhere, the stale mark stays there, pointing at nothing."""
        self.span = None
        token, self.token = self.token, None
        if token is not None:
            # Raises in another context (an end callback run in its own task or thread).
            with contextlib.suppress(ValueError, RuntimeError):
                _MARK.reset(token)

    def open_span(self) -> Span | None:
        mark = _open_mark(self)
        return None if mark is None else mark.span


_MARK: ContextVar[FrameworkMark | None] = ContextVar("agentos_obs_framework_mark", default=None)


def current_mark() -> FrameworkMark | None:
    return _MARK.get()


def _open_mark(mark: FrameworkMark | None) -> FrameworkMark | None:
    while mark is not None and (mark.span is None or mark.span.ended):
        mark = mark.parent
    return mark


def mark_framework_span(span: Span, parent: FrameworkMark | None = None) -> FrameworkMark:
    """Leave ``span`` in the caller's context. ``parent``: the enclosing span's mark (else
    the one already in the context). Marks of ended spans are skipped, so the chain holds
    only open spans: a context that runs one root after another keeps one mark, not all."""
    mark = FrameworkMark(span, _open_mark(parent if parent is not None else _MARK.get()))
    mark.token = _MARK.set(mark)
    return mark


def framework_span() -> Span | None:
    """The innermost framework span still open in this context, or None."""
    mark = _MARK.get()
    return None if mark is None else mark.open_span()


def clear_marks() -> None:
    """Forget every mark in this context (a test starting clean; a worker thread reused)."""
    _MARK.set(None)
