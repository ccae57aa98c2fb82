"""LlamaIndex integration on its instrumentation dispatcher: span and event handlers, and
:func:`instrument` for the root dispatcher (extra ``llama-index``)."""

from __future__ import annotations

from agentos_obs.integrations.llama_index._handlers import (
    AgentOSEventHandler,
    AgentOSSpanHandler,
    instrument,
    instrumented,
    uninstrument,
)

__all__ = [
    "AgentOSEventHandler",
    "AgentOSSpanHandler",
    "instrument",
    "instrumented",
    "uninstrument",
]
