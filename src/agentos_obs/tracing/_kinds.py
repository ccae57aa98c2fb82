"""The kinds and statuses of spans."""

from __future__ import annotations

from enum import Enum

__all__ = ["CostStatus", "SpanKind", "SpanStatus"]


class SpanKind(str, Enum):
    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    MEMORY = "memory"
    RETRIEVAL = "retrieval"
    CHAIN = "chain"
    EMBEDDING = "embedding"


class SpanStatus(str, Enum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"  # abandoned stream, cancelled task: not a failure of the app


class CostStatus(str, Enum):
    """How far a call's cost can be trusted."""

    PRICED = "priced"  # usage reported by the provider, priced from the catalogue
    UNPRICED = "unpriced"  # usage known, but no price for the model: cost unknown
    NO_USAGE = "no_usage"  # the provider reported no usage: cost unknown, never $0
    ESTIMATED = "estimated"  # usage estimated offline from the text, then priced
