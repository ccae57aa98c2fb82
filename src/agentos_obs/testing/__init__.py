"""A testing kit for apps that use agentos-obs, and for agentos-obs's own suite.

- :class:`InMemoryExporter` keeps every finished trace for assertions
  (``tracer.add_exporter(exporter)``, then ``exporter.traces`` / ``exporter.spans``).
- :class:`FlatPricing` prices every model at one flat rate, so costs are exact numbers.
- Offline fake models built on the frameworks' real base classes, reporting token usage the
  way provider integrations do: :class:`FakeChatModel` and :class:`FakeRetriever` for
  LangChain, :class:`FakeOpenAI` for LlamaIndex. ``agentos-obs demo`` and the benchmarks run
  on them too.
- The guard's counters: :func:`failure_counts` and :func:`dropped_counts` (what agentos-obs
  caught and swallowed, or dropped on purpose), :func:`reset_counts`, and strict mode
  (:func:`set_strict`, :func:`strict_mode`), in which internal failures raise.

``import agentos_obs.testing`` imports no framework: each fake model loads its framework
when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentos_obs.testing._exporter import InMemoryExporter
from agentos_obs.testing._guard import (
    dropped_counts,
    failure_counts,
    is_strict,
    reset_counts,
    set_strict,
    strict_mode,
)
from agentos_obs.testing._pricing import FlatPricing
from agentos_obs.testing._tokens import estimate_tokens

if TYPE_CHECKING:
    from agentos_obs.testing._langchain import FakeChatModel, FakeRetriever
    from agentos_obs.testing._llama_index import FakeOpenAI

# Names whose module imports a framework resolve on first use (PEP 562).
_LAZY = {
    "FakeChatModel": "agentos_obs.testing._langchain",
    "FakeRetriever": "agentos_obs.testing._langchain",
    "FakeOpenAI": "agentos_obs.testing._llama_index",
}

__all__ = [
    "FakeChatModel",
    "FakeOpenAI",
    "FakeRetriever",
    "FlatPricing",
    "InMemoryExporter",
    "dropped_counts",
    "estimate_tokens",
    "failure_counts",
    "is_strict",
    "reset_counts",
    "set_strict",
    "strict_mode",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
