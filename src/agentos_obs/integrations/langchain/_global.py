"""Global opt-in for LangChain: trace every run in the process without passing callbacks.

Hooked through LangChain's public ``register_configure_hook``
(``langchain_core.tracers.context``). ``CallbackManager.configure`` and
``AsyncCallbackManager.configure`` build the callback manager of every run, in whatever
thread or task runs it; each time, LangChain calls ``.get()`` on every registered variable
and adds the handler it returns, inheritable, unless the manager already holds an instance
of the class registered with it.

What is registered is not a ``ContextVar`` but :class:`_InstalledHandler`, whose ``get()``
returns the handler :func:`instrument` installed, read the same from every thread. A
ContextVar cannot meet both needs: one *set* in the caller's thread is invisible in plain
threads (each starts with an empty context, so ``ThreadPoolExecutor`` workers would go
untraced); one *created* with ``default=handler`` is seen everywhere, but its default can
never be taken back and LangChain cannot unregister a hook, so after :func:`uninstrument`
every manager would still receive the handler. LangChain only calls ``get()`` on the
variable; the test suite checks that through the public ``configure`` methods.

The hook is registered once per process (LangChain's list of hooks only grows). After
:func:`uninstrument` its ``get()`` returns None, which LangChain skips: no handler is added
and no LangChain function was ever replaced.

No duplicate spans: the hook's class is :class:`AgentOSCallbackHandler`, so a handler the
app passes explicitly wins (ours is added only to managers without one). A handler passed
to an inner call of a run the global handler already traces, reporting to the same tracer,
leaves that call to the global handler (``RunRecorder`` checks the parent of each run it
does not know).
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from agentos_obs.errors import ConfigurationError
from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler
from agentos_obs.integrations.langchain._runs import set_process_wide

if TYPE_CHECKING:
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["instrument", "instrumented_handler", "uninstrument"]

_lock = threading.Lock()
_handler: AgentOSCallbackHandler | None = None
_hook_registered = False


class _InstalledHandler:
    """Stands where LangChain expects a ContextVar: the same value in every thread, and
    None once uninstrumented (see the module docstring)."""

    __slots__ = ()

    def get(self) -> AgentOSCallbackHandler | None:
        return _handler


def _register_hook() -> None:
    # Imported here: langchain_core.tracers.context pulls in langsmith, which an app that
    # passes handlers by hand never needs.
    from langchain_core.tracers.context import register_configure_hook

    register_configure_hook(
        cast("ContextVar[Any]", _InstalledHandler()),
        inheritable=True,
        handle_class=AgentOSCallbackHandler,
    )


def instrumented_handler() -> AgentOSCallbackHandler | None:
    """The handler :func:`instrument` installed, or None when not instrumented."""
    return _handler


def instrument(tracer: Tracer | None = None) -> AgentOSCallbackHandler:
    """Trace every LangChain run in the process (every thread and task) from now on.

    Idempotent: a second call returns the same handler (switching it to ``tracer`` when one
    is given). ``tracer=None`` reports to the default stack. Returns the global handler.
    """
    global _handler, _hook_registered
    from agentos_obs.tracing._tracer import Tracer

    if tracer is not None and not isinstance(tracer, Tracer):
        raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
    with _lock:
        if _handler is not None:
            if tracer is not None:
                _handler.set_tracer(tracer)
            return _handler
        if not _hook_registered:
            _register_hook()
            _hook_registered = True
        handler = AgentOSCallbackHandler(tracer)
        set_process_wide(handler)
        _handler = handler
        return handler


def uninstrument() -> None:
    """Stop :func:`instrument`: new runs are no longer traced (runs already open finish
    normally, and LangChain builds managers without our handler again). Idempotent."""
    global _handler
    with _lock:
        handler, _handler = _handler, None
        if handler is not None:
            # Managers built while instrumented (a config the app kept) still hold it.
            handler.stop_new_runs()
            # It stays the process-wide recorder (for the dedupe of its open runs) until
            # the next instrument() replaces it: it holds no state once those runs end.
