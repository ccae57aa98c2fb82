"""The state machine behind the LlamaIndex handlers: LlamaIndex span ids in, AgentOS spans out.

One :class:`LlamaIndexBridge` is shared by a span handler and its event handler. It keeps one
:class:`SpanState` per LlamaIndex span that is still open *for us* and forgets it when the
span ends, so nothing grows with the number of queries.

Span lives
----------
A LlamaIndex span normally ends when its method returns. Streams are different: LlamaIndex
closes an LLM span as soon as the generator is *returned*, and the usage arrives later in an
end event that points at the closed span. So a span whose result streams is *parked* (kept
open here; LlamaIndex is still told to forget it) until the stream really ends:

- ``PARKED_EVENT``: an LLM call returned a generator; ends on its ``LLM*EndEvent`` (OK, with
  usage and time to first token) or ``ExceptionEvent`` (ERROR, or CANCELLED for an abandoned
  stream closed with GeneratorExit).
- ``PARKED_WRAPPER``: returned a ``StreamingResponse``: its ``response_gen`` is wrapped so the
  LLM calls made while it is consumed run in this span's context (they stay in the query's
  trace) and the span ends when the stream is exhausted, fails or is closed.
- ``PARKED_CHILDREN``: returned a stream consumed by its children (``llm.stream`` around
  ``stream_complete``, a query around its synthesizer, a chat engine's write-to-memory
  thread): ends when its last open child ends.

A parked span whose stream is dropped without being consumed is noticed through a weak
reference (queued, ended CANCELLED at the next opportunity) and, failing that, ended
CANCELLED by the timeout sweep, which runs opportunistically when a root span starts (no
background thread).

Usage rule
----------
Tokens and cost go on the span of the real provider call only. An LLM end event is ignored
for usage when the span already has a descendant that carries usage (``chat`` around
``complete``, ``achat`` around ``chat``) or when its response object is one whose usage was
already counted (``astream_chat`` of a CustomLLM re-yields the chunks of a sibling
``stream_chat`` call). So a trace's total equals what the provider reported per call.
"""

from __future__ import annotations

import threading
import time
import types
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import agentos_obs.attributes as attr
import agentos_obs.integrations.llama_index._extract as ex
from agentos_obs._internal.guard import report
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.integrations._content import to_text
from agentos_obs.integrations._current import mark_framework_span
from agentos_obs.integrations._estimation import has_exact_usage
from agentos_obs.integrations.llama_index._events import reaction_for
from agentos_obs.integrations.llama_index._state import (
    EMBEDDING_MODEL,
    OPEN,
    PARKED_CHILDREN,
    PARKED_EVENT,
    PARKED_WRAPPER,
    SpanState,
)
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus
from agentos_obs.tracing._tracer import Tracer, use_span

if TYPE_CHECKING:
    from agentos_obs.pricing._usage import Usage

__all__ = ["LlamaIndexBridge"]

_perf_ns = time.perf_counter_ns

FRAMEWORK_NAME = "llama_index"
SWEPT = "agentos.swept"
ABANDONED = "agentos.stream_abandoned"
CLOSED = "agentos.closed"

_TAG_KEYS = {
    "user.id": attr.USER_ID,
    "user_id": attr.USER_ID,
    "session.id": attr.SESSION_ID,
    "session_id": attr.SESSION_ID,
}
_COUNTED_LIMIT = 64  # recent LLM responses whose usage was counted (dedupe window)


class LlamaIndexBridge:
    """Turns LlamaIndex span and event notifications into AgentOS spans."""

    def __init__(
        self,
        tracer: Tracer | None = None,
        *,
        stream_timeout_s: float = 600.0,
    ) -> None:
        if tracer is not None and not isinstance(tracer, Tracer):
            raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
        self.tracer = tracer
        self.stream_timeout_s = 600.0
        self.sweep_interval_ns = 0
        self.set_stream_timeout(stream_timeout_s)
        self._states: dict[str, SpanState] = {}
        self._parked: dict[str, SpanState] = {}
        self._abandoned: deque[SpanState] = deque()
        self._counted: dict[int, object] = {}
        self._lock = threading.RLock()
        self._last_sweep = _perf_ns()
        self._event_methods: dict[type, Callable[[SpanState, Any], None] | None] = {}

    def set_stream_timeout(self, stream_timeout_s: float) -> None:
        try:
            timeout = float(stream_timeout_s)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("stream_timeout_s must be a number of seconds") from exc
        if not timeout > 0:  # also rejects NaN
            raise ConfigurationError(f"stream_timeout_s must be > 0, got {stream_timeout_s!r}")
        self.stream_timeout_s = timeout
        # Sweep at most this often (checked when a root span starts).
        self.sweep_interval_ns = int(min(timeout / 4, 10.0) * 1e9)

    # -- introspection (tests, health checks) ----------------------------------------------
    @property
    def open_span_count(self) -> int:
        """LlamaIndex spans still open for us (parked streams included)."""
        return len(self._states)

    @property
    def parked_stream_count(self) -> int:
        return len(self._parked)

    @property
    def dedupe_window_size(self) -> int:
        return len(self._counted)

    def resolve_tracer(self) -> Tracer | None:
        """The tracer of a new root span: the one given, else the default stack's (read now,
        so ``agentos_obs.configure()`` called after the handler was built still applies)."""
        if self.tracer is not None:
            return self.tracer
        from agentos_obs.stack import get_tracer

        return get_tracer()

    # -- span notifications ----------------------------------------------------------------
    def enter(
        self,
        li_id: str,
        instance: Any,
        parent_id: str | None,
        tags: Mapping[str, Any] | None,
        arguments: Any,
    ) -> Span | None:
        if self._abandoned:
            self._drain_abandoned()
        if li_id in self._states:  # entered twice: keep the first (as LlamaIndex does)
            return None
        parent = self._states.get(parent_id) if parent_id is not None else None
        if parent is not None:
            tracer = parent.tracer
        else:
            if _perf_ns() - self._last_sweep >= self.sweep_interval_ns:
                self.sweep()
            resolved = self.resolve_tracer()
            if resolved is None:
                return None
            tracer = resolved
        name = ex.readable_name(li_id)
        kind = ex.classify(instance, name)
        attributes: dict[str, Any] = {attr.FRAMEWORK: FRAMEWORK_NAME, attr.RUN_ID: li_id}
        provider: str | None = None
        if kind is SpanKind.LLM:
            provider = ex.provider_of(instance)
            model = ex.request_model(instance)
            if model is not None:
                attributes[attr.LLM_REQUEST_MODEL] = model
        elif kind is SpanKind.TOOL:
            tool = ex.tool_name(instance)
            if tool is not None:
                attributes[attr.TOOL_NAME] = tool
                name = tool  # a tool span is named after the tool, not FunctionTool.acall
        elif kind is SpanKind.EMBEDDING:
            provider = ex.provider_of(instance)
            model = ex.request_model(instance)
            if model is not None:
                attributes[EMBEDDING_MODEL] = model
        elif kind is SpanKind.AGENT:
            agent = getattr(instance, "name", None)
            if isinstance(agent, str) and agent:
                attributes[attr.AGENT_NAME] = agent
        if parent is None and tags:
            _apply_tags(attributes, tags)
        config = tracer.config
        if config.capture_content and (parent is None or kind in _INPUT_KINDS):
            value = ex.input_text(getattr(arguments, "arguments", None))
            if value is not None:
                attributes[attr.INPUT_VALUE] = to_text(value, config.max_content_length)
        try:
            span = tracer.begin_span(
                name,
                kind,
                parent=parent.span if parent is not None else None,
                use_context=parent is None,
                attributes=attributes,
            )
        except BudgetExceeded as exc:
            # LlamaIndex swallows every handler exception, so the call goes ahead anyway. The
            # refused span stays in the trace (ERROR, BudgetExceeded: where and why); the call
            # that is sent anyway gets a span of its own, marked not enforced, so its usage is
            # still counted. The unenforced budget is logged once and counted.
            report("llama_index.budget_not_enforced", exc, reraise_in_strict=False)
            span = tracer.begin_span(
                name,
                kind,
                parent=parent.span if parent is not None else None,
                use_context=parent is None,
                attributes={**(attributes or {}), attr.BUDGET_NOT_ENFORCED: True},
            )
        state = SpanState(li_id, span, tracer, parent, kind)
        state.provider = provider
        if provider is not None and kind in _MODEL_KINDS:
            # Known now, with or without usage later: a stream without usage keeps it.
            span.provider = provider
        # Seen by the provider-SDK layer in this context (the LLM's own request, an
        # embedding batch), including while a parked stream is consumed here.
        state.mark = mark_framework_span(span, parent.mark if parent is not None else None)
        if parent is not None:
            with self._lock:
                parent.open_children += 1
        self._states[li_id] = state
        return span

    def exit(self, li_id: str, result: Any) -> Span | None:
        state = self._states.get(li_id)
        if state is None or state.finished:
            return None
        how = ex.stream_kind(result)
        if how == ex.STREAM_NONE:
            config = state.tracer.config
            if config.capture_content and (state.parent is None or state.kind in _INPUT_KINDS):
                value = ex.output_text(result)
                if value is not None:
                    state.span.attributes[attr.OUTPUT_VALUE] = to_text(
                        value, config.max_content_length
                    )
            self.finish(state)
        elif how == ex.STREAM_GENERATOR:
            if state.llm_call and not state.response_seen:
                self._park(state, PARKED_EVENT, result)
            else:
                self._park_on_children(state)
        elif how == ex.STREAM_RESPONSE:
            self._park_response(state, result)
        else:
            self._park_on_children(state)
        return state.span

    def drop(self, li_id: str, err: BaseException | None) -> Span | None:
        state = self._states.get(li_id)
        if state is None or state.finished:
            return None
        if err is None:
            self.finish(state, status=SpanStatus.ERROR)
        else:
            self.finish(state, error=err)
        return state.span

    # -- parking -----------------------------------------------------------------------------
    def _park(self, state: SpanState, mode: int, stream: Any) -> None:
        state.mode = mode
        if state.kind is SpanKind.LLM:
            state.span.attributes[attr.LLM_STREAMING] = True
        abandoned = self._abandoned

        def dropped(_ref: weakref.ref[Any], state: SpanState = state) -> None:
            # Runs inside the garbage collector, any thread: only queue (a deque append is
            # atomic); the span is ended at the next span start or sweep.
            abandoned.append(state)

        try:
            state.ref = weakref.ref(stream, dropped)
        except TypeError:  # not weak-referenceable: the sweep still ends it
            state.ref = None
        self._parked[state.li_id] = state

    def _park_on_children(self, state: SpanState) -> None:
        with self._lock:
            if state.open_children > 0:
                state.mode = PARKED_CHILDREN
                self._parked[state.li_id] = state
                return
        self.finish(state)

    def _park_response(self, state: SpanState, response: Any) -> None:
        """A StreamingResponse: wrap its generator once; outer spans wait for the inner one."""
        gen = getattr(response, "response_gen", None)
        code = getattr(gen, "gi_code", None) or getattr(gen, "ag_code", None)
        if code is _SYNC_CODE or code is _ASYNC_CODE:
            self._park_on_children(state)
            return
        wrapped: Any
        if isinstance(gen, types.GeneratorType):
            wrapped = _stream_sync(gen, self, state)
        elif isinstance(gen, types.AsyncGeneratorType):
            wrapped = _stream_async(gen, self, state)
        else:
            self.finish(state)
            return
        response.response_gen = wrapped
        self._park(state, PARKED_WRAPPER, wrapped)

    # -- ending ------------------------------------------------------------------------------
    def finish(
        self,
        state: SpanState,
        *,
        status: SpanStatus | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End ``state``'s span, then parents parked on their children whose last one it was."""
        with self._lock:
            if state.finished:
                return
            state.finished = True
        current: SpanState | None = state
        while current is not None:
            self._states.pop(current.li_id, None)
            self._parked.pop(current.li_id, None)
            current.ref = None  # also cancels the weakref callback
            current.forget()
            current.tracer.end_span(current.span, status=status, error=error)
            parent = current.parent
            current.parent = None  # no chain of finished states kept alive
            if parent is None:
                return
            with self._lock:
                parent.open_children -= 1
                cascade = (
                    parent.mode == PARKED_CHILDREN
                    and parent.open_children <= 0
                    and not parent.finished
                )
                if cascade:
                    parent.finished = True
            # A failed or abandoned stream ends the spans waiting on it the same way.
            current = parent if cascade else None

    def finish_stream(
        self,
        state: SpanState,
        *,
        status: SpanStatus | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Called by the stream wrappers; never raises into the consumer."""
        try:
            self.finish(state, status=status, error=error)
        except Exception as exc:
            report("llama_index.stream", exc)

    def _drain_abandoned(self) -> None:
        while self._abandoned:
            try:
                state = self._abandoned.popleft()
            except IndexError:
                return
            if not state.finished and state.mode != OPEN:
                state.span.attributes[ABANDONED] = True
                self.finish(state, status=SpanStatus.CANCELLED)

    def sweep(self, max_age_s: float | None = None) -> int:
        """End parked streams older than ``max_age_s`` (default: the stream timeout) as
        CANCELLED, and streams already dropped by the app. Returns how many ended."""
        self._last_sweep = _perf_ns()
        before = len(self._parked)
        self._drain_abandoned()
        ended = before - len(self._parked)
        age = self.stream_timeout_s if max_age_s is None else max(0.0, float(max_age_s))
        cutoff = _perf_ns() - int(age * 1e9)
        stale = [s for s in list(self._parked.values()) if s.start_ns <= cutoff]
        stale.sort(key=lambda s: s.start_ns, reverse=True)  # innermost first
        for state in stale:
            if not state.finished:
                state.span.attributes[SWEPT] = True
                self.finish(state, status=SpanStatus.CANCELLED)
                ended += 1
        return ended

    def close(self, reason: str = "uninstrumented") -> int:
        """End every span still open for us (ours only) as CANCELLED and forget all state."""
        states = sorted(self._states.values(), key=lambda s: s.start_ns, reverse=True)
        for state in states:
            if not state.finished:
                state.span.attributes[CLOSED] = reason
                self.finish(state, status=SpanStatus.CANCELLED)
        self._states.clear()
        self._parked.clear()
        self._abandoned.clear()
        with self._lock:
            self._counted.clear()
        return len(states)

    # -- events ------------------------------------------------------------------------------
    def handle_event(self, event: Any) -> None:
        cls = type(event)
        method = self._event_methods.get(cls, _MISSING)
        if method is _MISSING:
            method = self._resolve_event_method(cls)
        if method is None:
            return
        span_id = getattr(event, "span_id", None)
        if not isinstance(span_id, str):
            return
        state = self._states.get(span_id)
        if state is None or state.finished:
            return
        method(state, event)

    def _resolve_event_method(self, cls: type) -> Callable[[SpanState, Any], None] | None:
        method = reaction_for(self, cls)
        if len(self._event_methods) >= 1024:
            self._event_methods.clear()
        self._event_methods[cls] = method
        return method

    # -- usage -------------------------------------------------------------------------------
    def already_counted(self, response: object) -> bool:
        with self._lock:
            return self._counted.get(id(response)) is response

    def remember_counted(self, response: object) -> None:
        """Hold the response (so its id is not reused) in a small window of recent calls."""
        with self._lock:
            self._counted[id(response)] = response
            while len(self._counted) > _COUNTED_LIMIT:
                del self._counted[next(iter(self._counted))]

    def record_usage(self, state: SpanState, usage: Usage, model: str | None) -> None:
        if has_exact_usage(state.span):
            return  # the SDK layer already recorded the provider's own counts here
        state.tracer.record_usage(
            state.span,
            model=model,
            provider=state.provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )


_INPUT_KINDS = frozenset({SpanKind.TOOL, SpanKind.AGENT})
_MODEL_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})
_MISSING: Any = object()


def _apply_tags(attributes: dict[str, Any], tags: Mapping[str, Any]) -> None:
    """``instrument_tags({...})`` on a root span: user/session ids, the rest as tags."""
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            continue
        attributes[_TAG_KEYS.get(key, f"llama_index.tag.{key}")] = value


def _scope(span: Span) -> AbstractContextManager[Any]:
    return use_span(span) if span.trace is not None else nullcontext()


def _stream_sync(gen: Iterator[Any], bridge: LlamaIndexBridge, state: SpanState) -> Iterator[Any]:
    """Yield ``gen``'s items, each produced in the parked span's context; end it at the end."""
    try:
        while True:
            with _scope(state.span):
                try:
                    item = next(gen)
                except StopIteration:
                    break
            yield item
    except GeneratorExit:
        try:
            close = getattr(gen, "close", None)
            if callable(close):
                close()  # inner LLM streams end (CANCELLED) before the span waiting on them
        finally:
            state.span.attributes[ABANDONED] = True
            bridge.finish_stream(state, status=SpanStatus.CANCELLED)
        raise
    except BaseException as exc:
        bridge.finish_stream(state, error=exc)
        raise
    bridge.finish_stream(state)


async def _stream_async(
    gen: AsyncIterator[Any], bridge: LlamaIndexBridge, state: SpanState
) -> AsyncIterator[Any]:
    try:
        while True:
            with _scope(state.span):
                try:
                    item = await gen.__anext__()
                except StopAsyncIteration:
                    break
            yield item
    except GeneratorExit:
        # Not awaiting the inner generator's aclose here: this may run from a finalizer.
        state.span.attributes[ABANDONED] = True
        bridge.finish_stream(state, status=SpanStatus.CANCELLED)
        raise
    except BaseException as exc:
        bridge.finish_stream(state, error=exc)
        raise
    bridge.finish_stream(state)


_SYNC_CODE = _stream_sync.__code__
_ASYNC_CODE = _stream_async.__code__
