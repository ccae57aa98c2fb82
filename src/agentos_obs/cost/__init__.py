"""Spend: cost analytics rolled up by model, user and agent, and budgets that alert or
refuse calls.

``UsageRollup`` and the attribution rules ``user_of``, ``agent_of`` and ``model_of`` live in
:mod:`agentos_obs.tracing` (one rule each, shared with the seal); they are re-exported here
so imports from ``agentos_obs.cost`` keep working.
"""

from __future__ import annotations

from agentos_obs.cost._analytics import CostAnalytics
from agentos_obs.cost._budgets import (
    BUDGET_KEYS,
    BUDGET_MODES,
    BUDGET_PERIODS,
    BudgetAlert,
    BudgetStatus,
    budget_window,
)
from agentos_obs.tracing import UsageRollup, agent_of, model_of, user_of

__all__ = [
    "BUDGET_KEYS",
    "BUDGET_MODES",
    "BUDGET_PERIODS",
    "BudgetAlert",
    "BudgetStatus",
    "CostAnalytics",
    "UsageRollup",
    "agent_of",
    "budget_window",
    "model_of",
    "user_of",
]
