"""W3C trace context in and out of AgentOS spans (see :mod:`agentos_obs.tracing.propagation`).

Kept at this path because the README documents it."""

from __future__ import annotations

from agentos_obs.tracing.propagation import (
    RemoteContext,
    extract,
    format_traceparent,
    inject,
    parse_traceparent,
    remote_parent,
)

__all__ = [
    "RemoteContext",
    "extract",
    "format_traceparent",
    "inject",
    "parse_traceparent",
    "remote_parent",
]
