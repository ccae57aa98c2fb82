"""Global opt-in: ``agentos_obs.instrument()`` traces every LangChain and LlamaIndex run in
the process without passing callbacks; ``uninstrument()`` stops it. The provider-SDK layers
(``openai``, ``anthropic``) are opt-in here: they wrap a third-party SDK's methods."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from agentos_obs.errors import ConfigurationError
from agentos_obs.tracing._tracer import Tracer

__all__ = ["instrument", "instrumented", "uninstrument"]

# (our integration module, the framework module whose presence makes it "importable")
_INTEGRATIONS = {
    "langchain": ("agentos_obs.integrations.langchain", "langchain_core"),
    "llama_index": ("agentos_obs.integrations.llama_index", "llama_index.core"),
    "openai": ("agentos_obs.integrations.openai", "openai"),
    "anthropic": ("agentos_obs.integrations.anthropic", "anthropic"),
}
_active: set[str] = set()


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def instrument(
    tracer: Tracer | None = None,
    langchain: bool | None = None,
    llama_index: bool | None = None,
    *,
    openai: bool | None = False,
    anthropic: bool | None = False,
) -> dict[str, bool]:
    """Instrument the frameworks: ``None`` = if importable, ``True`` = required (ImportError
    naming the extra when missing), ``False`` = leave alone. The SDK layers default to
    ``False``. Idempotent; ``tracer=None`` reports to the default stack. Returns which
    integrations are now active."""
    if tracer is not None and not isinstance(tracer, Tracer):
        raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
    wanted = {
        "langchain": langchain,
        "llama_index": llama_index,
        "openai": openai,
        "anthropic": anthropic,
    }
    for name, flag in wanted.items():
        if flag is False:
            continue
        module_name, framework = _INTEGRATIONS[name]
        if flag is None and not _available(framework):
            continue
        module = importlib.import_module(module_name)
        module.instrument(tracer=tracer)
        _active.add(name)
    return {name: name in _active for name in _INTEGRATIONS}


def uninstrument() -> None:
    """Undo :func:`instrument` for every framework it instrumented."""
    for name in list(_active):
        module = sys.modules.get(_INTEGRATIONS[name][0])
        if module is not None:
            module.uninstrument()
        _active.discard(name)


def instrumented() -> frozenset[str]:
    return frozenset(_active)
