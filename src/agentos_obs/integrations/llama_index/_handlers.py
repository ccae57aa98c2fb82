"""LlamaIndex integration, on llama-index-core's instrumentation module (dispatcher, span and
event handlers; not the deprecated callback manager).

Global::

    from agentos_obs.integrations.llama_index import instrument, uninstrument
    instrument()            # or agentos_obs.instrument(); tracer=None: the default stack
    ...                     # every query engine, chat engine, agent, LLM call is traced
    uninstrument()

By hand, on the root dispatcher or any other::

    span_handler = AgentOSSpanHandler(tracer=tracer)
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(span_handler)
    dispatcher.add_event_handler(span_handler.event_handler)

What is recorded
----------------
Every LlamaIndex span becomes an AgentOS span named ``Class.method`` (a tool's span is named
after the tool), parented by LlamaIndex's own span ids. A root LlamaIndex span starts a new
trace, or nests under the AgentOS span active in the caller's context. Kinds come from the
object whose method is traced: LLMs -> LLM, embeddings -> EMBEDDING, retrievers ->
RETRIEVAL, tools -> TOOL, agent and workflow runs -> AGENT, memory -> MEMORY, the rest ->
CHAIN. Tokens and cost sit on the span of the real provider call only (see the usage rule
in :mod:`agentos_obs.integrations.llama_index._bridge`); streaming spans stay open until
their stream ends.

Threads: LlamaIndex finds parents through a contextvar, so work submitted to a thread pool
keeps its parent only when run in a copied context (``copy_context().run``, or LlamaIndex's
own ``Thread``); a plain ``ThreadPoolExecutor.submit`` starts a new trace.

Budgets in raise mode
---------------------
``BudgetAlert(mode="raise")`` cannot stop a LlamaIndex call. LlamaIndex 0.14 wraps every
span and event handler call in ``except BaseException: pass``, so ``BudgetExceeded`` raised
while the LLM span opens never reaches the app, and there is no other hook in the call path
that is not swallowed. The call goes ahead and is recorded on the LLM span the budget
refused: status ERROR with ``error.type`` ``BudgetExceeded``, its tokens and cost still in
the trace (budget and metrics processors saw that span end before its usage was known, so
they do not count this call); the unenforced budget is logged once and counted under
``llama_index.budget_not_enforced``. To enforce a budget, check it before calling LlamaIndex, e.g.
``if budget.check(): ...`` or by opening an LLM-kind span yourself with
``tracer.start_span(..., SpanKind.LLM)`` around the call, which raises in your code.

Failures inside the handlers never reach the app (LlamaIndex would swallow them silently):
each one is logged once and counted through ``agentos_obs._internal.guard``.
"""

from __future__ import annotations

import threading
from typing import Any

from agentos_obs._internal.guard import report
from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations.llama_index._bridge import LlamaIndexBridge
from agentos_obs.tracing._tracer import Tracer

try:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
    from pydantic import Field, PrivateAttr
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError(
        "agentos_obs.integrations.llama_index needs LlamaIndex: "
        "pip install 'agentos-obs[llama-index]'"
    ) from exc

__all__ = [
    "AgentOSEventHandler",
    "AgentOSSpanHandler",
    "instrument",
    "instrumented",
    "uninstrument",
]


class AgentOSSpanHandler(BaseSpanHandler[Any]):
    """Turns LlamaIndex spans into AgentOS spans (pair it with :attr:`event_handler`).

    ``tracer=None`` reports to the default stack, resolved when each trace starts.
    ``stream_timeout_s``: a stream still open after this long is ended as CANCELLED.

    LlamaIndex's ``open_spans`` bookkeeping is not used (it stays empty): our own state is
    kept per open span and freed when the span ends.
    """

    # A plain field, not a PrivateAttr: pydantic serves private attributes through a slow
    # __getattr__, and this one is read on every span.
    bridge: LlamaIndexBridge = Field(default=None, exclude=True, repr=False)  # type: ignore[assignment]
    _event_handler: Any = PrivateAttr(default=None)

    def __init__(self, tracer: Tracer | None = None, *, stream_timeout_s: float = 600.0) -> None:
        super().__init__()
        self.bridge = LlamaIndexBridge(tracer, stream_timeout_s=stream_timeout_s)

    @classmethod
    def class_name(cls) -> str:
        return "AgentOSSpanHandler"

    # -- configuration and introspection -----------------------------------------------------
    @property
    def tracer(self) -> Tracer | None:
        """The tracer given, or None for the default stack's."""
        return self.bridge.tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        if tracer is not None and not isinstance(tracer, Tracer):
            raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
        self.bridge.tracer = tracer

    @property
    def event_handler(self) -> AgentOSEventHandler:
        """The event handler that shares this handler's state (created once)."""
        if self._event_handler is None:
            self._event_handler = AgentOSEventHandler(span_handler=self)
        handler: AgentOSEventHandler = self._event_handler
        return handler

    @property
    def open_span_count(self) -> int:
        """LlamaIndex spans still open for us, parked streams included."""
        return self.bridge.open_span_count

    @property
    def parked_stream_count(self) -> int:
        return self.bridge.parked_stream_count

    def sweep(self, max_age_s: float | None = None) -> int:
        """End streams open longer than ``max_age_s`` (default ``stream_timeout_s``) or
        dropped by the app, as CANCELLED. Also runs by itself when root spans start."""
        try:
            return self.bridge.sweep(max_age_s)
        except Exception as exc:
            report("llama_index.sweep", exc)
            return 0

    def close(self) -> None:
        """End the spans still open for us as CANCELLED (``Dispatcher.shutdown`` calls it)."""
        try:
            self.bridge.close("closed")
        except Exception as exc:
            report("llama_index.close", exc)

    # -- dispatcher entry points (overridden whole: no pydantic BaseSpan per span) -----------
    def span_enter(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self.bridge.enter(id_, instance, parent_id, tags, bound_args)
        except Exception as exc:
            report("llama_index.span_enter", exc)

    def span_exit(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self.bridge.exit(id_, result)
        except Exception as exc:
            report("llama_index.span_exit", exc)

    def span_drop(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self.bridge.drop(id_, err)
        except Exception as exc:
            report("llama_index.span_drop", exc)

    # -- BaseSpanHandler's abstract API, for callers that use it directly ---------------------
    def new_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return self.bridge.enter(id_, instance, parent_span_id, tags, bound_args)
        except Exception as exc:
            report("llama_index.span_enter", exc)
            return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return self.bridge.exit(id_, result)
        except Exception as exc:
            report("llama_index.span_exit", exc)
            return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            return self.bridge.drop(id_, err)
        except Exception as exc:
            report("llama_index.span_drop", exc)
            return None


class AgentOSEventHandler(BaseEventHandler):
    """Reads LlamaIndex events (usage, models, retrieval results, stream progress) onto the
    spans of its :class:`AgentOSSpanHandler`. ``span_handler=None`` makes a new one (with
    ``tracer``); attach both to the same dispatcher."""

    bridge: LlamaIndexBridge = Field(default=None, exclude=True, repr=False)  # type: ignore[assignment]
    _span_handler: AgentOSSpanHandler = PrivateAttr()

    def __init__(
        self, span_handler: AgentOSSpanHandler | None = None, *, tracer: Tracer | None = None
    ) -> None:
        super().__init__()
        if span_handler is None:
            span_handler = AgentOSSpanHandler(tracer=tracer)
        elif not isinstance(span_handler, AgentOSSpanHandler):
            raise ConfigurationError(
                f"span_handler must be an AgentOSSpanHandler, got {span_handler!r}"
            )
        elif tracer is not None:
            raise ConfigurationError("give the tracer to the span handler, not to both")
        self._span_handler = span_handler
        self.bridge = span_handler.bridge

    @classmethod
    def class_name(cls) -> str:
        return "AgentOSEventHandler"

    @property
    def span_handler(self) -> AgentOSSpanHandler:
        return self._span_handler

    def handle(self, event: Any, **kwargs: Any) -> None:
        try:
            self.bridge.handle_event(event)
        except Exception as exc:
            report("llama_index.event", exc)


# -- global instrumentation -------------------------------------------------------------------

_lock = threading.Lock()
_installed: AgentOSSpanHandler | None = None


def _attached(handlers: list[Any], handler: object) -> bool:
    # Identity, not ==: pydantic models compare equal field by field.
    return any(h is handler for h in handlers)


def _detach(handlers: list[Any], handler: object) -> None:
    for i in reversed(range(len(handlers))):
        if handlers[i] is handler:
            del handlers[i]


def instrument(
    tracer: Tracer | None = None, *, stream_timeout_s: float | None = None
) -> AgentOSSpanHandler:
    """Attach our span and event handlers to LlamaIndex's root dispatcher (idempotent).

    ``tracer=None`` reports to the default stack. Calling again re-attaches the same pair
    (never a second one) and sets its tracer. Returns the span handler.
    """
    global _installed
    if tracer is not None and not isinstance(tracer, Tracer):
        raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
    dispatcher = get_dispatcher()
    with _lock:
        handler = _installed
        if handler is None:
            handler = AgentOSSpanHandler(
                tracer, stream_timeout_s=600.0 if stream_timeout_s is None else stream_timeout_s
            )
        else:
            handler.tracer = tracer
            if stream_timeout_s is not None:
                handler.bridge.set_stream_timeout(stream_timeout_s)
        if not _attached(dispatcher.span_handlers, handler):
            dispatcher.add_span_handler(handler)
        if not _attached(dispatcher.event_handlers, handler.event_handler):
            dispatcher.add_event_handler(handler.event_handler)
        _installed = handler
    return handler


def uninstrument() -> None:
    """Detach our handlers from the root dispatcher (in place) and end the spans still open
    for them as CANCELLED. Other handlers and their spans are left alone. Idempotent."""
    global _installed
    with _lock:
        handler, _installed = _installed, None
    if handler is None:
        return
    dispatcher = get_dispatcher()
    _detach(dispatcher.span_handlers, handler)
    _detach(dispatcher.event_handlers, handler.event_handler)
    try:
        handler.bridge.close("uninstrumented")
    except Exception as exc:
        report("llama_index.close", exc)


def instrumented() -> AgentOSSpanHandler | None:
    """The span handler :func:`instrument` attached, or None."""
    return _installed
