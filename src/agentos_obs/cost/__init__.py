"""Spend: cost analytics rolled up by model, user and agent, and budgets that alert or
refuse calls."""

from __future__ import annotations

from agentos_obs.cost._analytics import (
    BUDGET_KEYS,
    BUDGET_MODES,
    BUDGET_PERIODS,
    BudgetAlert,
    BudgetStatus,
    CostAnalytics,
    UsageRollup,
    agent_of,
    model_of,
    user_of,
)

__all__ = [
    "BUDGET_KEYS",
    "BUDGET_MODES",
    "BUDGET_PERIODS",
    "BudgetAlert",
    "BudgetStatus",
    "CostAnalytics",
    "UsageRollup",
    "agent_of",
    "model_of",
    "user_of",
]
