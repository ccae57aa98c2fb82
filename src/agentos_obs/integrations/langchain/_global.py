"""Global opt-in for LangChain: trace every run in the process without passing callbacks.

LangChain builds a callback manager for every run through one module-level function,
``langchain_core.callbacks.manager._configure`` (both ``CallbackManager.configure`` and
``AsyncCallbackManager.configure`` call it, from whatever thread or task runs the chain).
Wrapping that function reaches every thread — plain ``ThreadPoolExecutor`` workers
included, which a ContextVar-based ``register_configure_hook`` cannot — and is undone by
putting the original back. (``register_configure_hook`` also has no way to unregister.)

The wrapper adds one shared handler, inheritable, to each manager that has no
``AgentOSCallbackHandler`` yet. A handler the app passes explicitly wins at the root; one
passed to an inner call of a run the global handler already traces, and reporting to the
same tracer, is dropped from that manager so no span is recorded twice.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from agentos_obs._internal.guard import report
from agentos_obs.errors import ConfigurationError

if TYPE_CHECKING:
    from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["instrument", "instrumented_handler", "uninstrument"]

_lock = threading.Lock()
_handler: AgentOSCallbackHandler | None = None
# (our wrapper, the function it wraps) while installed: uninstrument restores by identity.
_installed: tuple[Any, Any] | None = None


def instrumented_handler() -> AgentOSCallbackHandler | None:
    """The handler :func:`instrument` installed, or None when not instrumented."""
    return _handler


def _destination(handler: AgentOSCallbackHandler) -> object:
    tracer = handler._tracer
    if tracer is not None:
        return tracer
    try:
        return handler.tracer
    except Exception:  # the default stack cannot be built: compare by "default"
        return None


def _attach(manager: Any, handler: AgentOSCallbackHandler) -> None:
    """Make ``handler`` part of ``manager`` exactly once (see the module docstring)."""
    from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler

    handlers = manager.handlers
    present = False
    explicit: list[AgentOSCallbackHandler] = []
    for h in handlers:
        if h is handler:
            present = True
        elif isinstance(h, AgentOSCallbackHandler):
            explicit.append(h)
    if not present:
        if not explicit:
            manager.add_handler(handler, inherit=True)
        return
    if explicit:
        target = _destination(handler)
        duplicates = {id(h) for h in explicit if _destination(h) is target}
        if duplicates:
            manager.handlers = [h for h in handlers if id(h) not in duplicates]
            manager.inheritable_handlers = [
                h for h in manager.inheritable_handlers if id(h) not in duplicates
            ]


def _wrap(original: Any) -> Any:
    @functools.wraps(original)
    def configure_with_agentos(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        handler = _handler
        if handler is not None:
            try:
                _attach(manager, handler)
            except Exception as exc:
                report("langchain.instrument", exc)
        return manager

    return configure_with_agentos


def instrument(tracer: Tracer | None = None) -> AgentOSCallbackHandler:
    """Trace every LangChain run in the process (every thread and task) from now on.

    Idempotent: a second call returns the same handler (switching it to ``tracer`` when one
    is given). ``tracer=None`` reports to the default stack. Returns the global handler.
    """
    global _handler, _installed
    from langchain_core.callbacks import manager as manager_module

    from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler
    from agentos_obs.tracing._tracer import Tracer

    if tracer is not None and not isinstance(tracer, Tracer):
        raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
    with _lock:
        if _handler is not None:
            if tracer is not None:
                _handler._tracer = tracer
            return _handler
        handler = AgentOSCallbackHandler(tracer)
        if _installed is None or manager_module._configure is not _installed[0]:
            original = manager_module._configure
            wrapper = _wrap(original)
            manager_module._configure = wrapper
            _installed = (wrapper, original)
        _handler = handler
        return handler


def uninstrument() -> None:
    """Stop :func:`instrument`: new runs are no longer traced and LangChain's function is
    restored (runs already open finish normally). Idempotent."""
    global _handler, _installed
    from langchain_core.callbacks import manager as manager_module

    with _lock:
        handler, _handler = _handler, None
        if handler is not None:
            handler._enabled = False
        if _installed is not None and manager_module._configure is _installed[0]:
            manager_module._configure = _installed[1]
        _installed = None
        # If someone wrapped our wrapper since, it stays in their chain but adds nothing:
        # it reads ``_handler``, now None.
