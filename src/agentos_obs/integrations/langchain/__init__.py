"""LangChain integration: :class:`AgentOSCallbackHandler` for one chain, or
:func:`instrument` for every run in the process (extra ``langchain``)."""

from __future__ import annotations

from agentos_obs.integrations.langchain._global import (
    instrument,
    instrumented_handler,
    uninstrument,
)
from agentos_obs.integrations.langchain._handler import AgentOSCallbackHandler

__all__ = ["AgentOSCallbackHandler", "instrument", "instrumented_handler", "uninstrument"]
