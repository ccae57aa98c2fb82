"""Exceptions the library raises on purpose."""

from __future__ import annotations

__all__ = ["AgentOSObsError", "BudgetExceeded", "ConfigurationError"]


class AgentOSObsError(Exception):
    """Base class of the errors agentos_obs raises on purpose."""


class ConfigurationError(AgentOSObsError, ValueError):
    """Bad input at set-up time: a wrong argument, an unreadable price file…"""


class BudgetExceeded(AgentOSObsError):
    """Raised in the app at the next LLM call once a budget in ``raise`` mode is spent.

    The one exception the hot path lets through on purpose: the user asked for it.
    """

    def __init__(self, message: str, *, budget: object = None, key: str | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.key = key
