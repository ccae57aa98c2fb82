"""Distributed traces: W3C trace context in and out of AgentOS spans.

A multi-service agent is one trace when each hop carries the W3C ``traceparent`` header:

* :func:`inject` writes the current span's ``traceparent`` (and ``tracestate``) into the
  headers of an outgoing request;
* :func:`extract` reads them from an incoming request and returns a context manager under
  which new AgentOS traces continue the caller's trace (same trace id, the caller's span as
  parent)::

      with extract(request.headers):
          result = agent.invoke(...)

* when the app already has an active OpenTelemetry span (an instrumented web framework),
  AgentOS traces started inside it join it as children, with nothing to call. OpenTelemetry
  is never imported by this module: if the app has not loaded it, there is no such span.

Malformed headers are ignored (a new trace starts), as the W3C specification asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from contextvars import Token
from types import TracebackType

import agentos_obs.tracing._tracer as tracing
from agentos_obs._internal.guard import report
from agentos_obs.tracing._ids import is_valid_span_id, is_valid_trace_id
from agentos_obs.tracing._remote import (
    EXTRACTED as _EXTRACTED,
)
from agentos_obs.tracing._remote import (
    RemoteContext,
    format_traceparent,
    remote_parent,
)
from agentos_obs.tracing._remote import (
    otel_context as _otel_context,
)
from agentos_obs.tracing._spans import Span

__all__ = [
    "RemoteContext",
    "extract",
    "format_traceparent",
    "inject",
    "parse_traceparent",
    "remote_parent",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# version-traceid-parentid-flags; later versions may append fields after a dash.
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_MAX_TRACESTATE = 512  # W3C: at most 32 members; keep it bounded whatever arrives


def parse_traceparent(value: object, tracestate: object = None) -> RemoteContext | None:
    """The context a ``traceparent`` value carries, or None if it is not a valid one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"] is not None):
        return None
    trace_id, span_id = match["trace_id"], match["span_id"]
    if not is_valid_trace_id(trace_id) or not is_valid_span_id(span_id):
        return None
    state = _header_text(tracestate)
    if state is not None:
        state = state.strip()[:_MAX_TRACESTATE] or None
    return RemoteContext(trace_id, span_id, bool(int(match["flags"], 16) & 1), state)


def _header_text(value: object) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if isinstance(value, str) else None


def _get_header(headers: object, name: str) -> str | None:
    """A header from a mapping (any key case), or from (name, value) pairs as in ASGI."""
    if headers is None:
        return None
    if isinstance(headers, Mapping):
        value = headers.get(name)
        if value is None:
            for key, item in headers.items():
                key_text = key.decode("latin-1") if isinstance(key, bytes) else key
                if isinstance(key_text, str) and key_text.lower() == name:
                    value = item
                    break
        return _header_text(value)
    if isinstance(headers, Iterable) and not isinstance(headers, (str, bytes)):
        for pair in headers:
            if isinstance(pair, (tuple, list)) and len(pair) == 2:
                key = pair[0].decode("latin-1") if isinstance(pair[0], bytes) else pair[0]
                if isinstance(key, str) and key.lower() == name:
                    return _header_text(pair[1])
    return None


def _current_context(span: Span | None) -> RemoteContext | None:
    if span is None:
        span = tracing.current_span()
    extracted = _EXTRACTED.get()
    if span is not None:
        trace = span.trace
        sampled = trace.sampled if trace is not None else True
        state = None
        if extracted is not None and extracted.trace_id == span.trace_id:
            state = extracted.tracestate
        return RemoteContext(span.trace_id, span.span_id, sampled, state)
    trace = tracing.current_trace()
    if trace is not None and trace.remote_parent_id is not None:
        # Inside a start_trace block before any span: we are still at the caller's span.
        state = None
        if extracted is not None and extracted.trace_id == trace.trace_id:
            state = extracted.tracestate
        return RemoteContext(trace.trace_id, trace.remote_parent_id, trace.sampled, state)
    if extracted is not None:
        return extracted
    return _otel_context()


def inject(
    headers: MutableMapping[str, str] | None = None, *, span: Span | None = None
) -> MutableMapping[str, str]:
    """Write ``traceparent`` (and ``tracestate``) of the current span into ``headers``.

    ``span`` overrides the current span. With no current span, an extracted context or the
    app's OpenTelemetry span is passed on; with none at all, ``headers`` is left as it is.
    Returns ``headers`` (a new dict when None was given).
    """
    if headers is None:
        headers = {}
    context = _current_context(span)
    if context is None:
        return headers
    for key in [
        k for k in headers if isinstance(k, str) and k.lower() in (TRACEPARENT, TRACESTATE)
    ]:
        del headers[key]
    headers[TRACEPARENT] = context.traceparent
    if context.tracestate:
        headers[TRACESTATE] = context.tracestate
    return headers


class _ExtractedScope:
    """Context manager returned by :func:`extract`."""

    __slots__ = ("_token", "context")

    def __init__(self, context: RemoteContext | None) -> None:
        self.context = context
        self._token: Token[RemoteContext | None] | None = None

    def __enter__(self) -> RemoteContext | None:
        if self.context is not None:
            self._token = _EXTRACTED.set(self.context)
        return self.context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _EXTRACTED.reset(token)
            except ValueError:  # exited in another context: clear rather than leak
                _EXTRACTED.set(None)


def extract(headers: object) -> _ExtractedScope:
    """A context manager under which new traces continue the trace in ``headers``.

    ``headers``: a mapping (any key case; ``request.headers`` of Flask, Django's
    ``request.headers``, Starlette...) or (name, value) pairs (ASGI ``scope["headers"]``).
    Entering returns the :class:`RemoteContext`, or None when the headers carry no valid
    ``traceparent`` (then new traces start fresh).
    """
    try:
        context = parse_traceparent(
            _get_header(headers, TRACEPARENT), _get_header(headers, TRACESTATE)
        )
    except Exception as exc:  # an odd headers object never breaks the app
        report("propagation.extract", exc)
        context = None
    return _ExtractedScope(context)
