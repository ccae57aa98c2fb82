"""Spend: cost analytics rolled up by model, user and agent, and budgets that alert or
refuse calls, held in a ledger shared by processes and hosts.

``UsageRollup`` and the attribution rules ``user_of``, ``agent_of`` and ``model_of`` live in
:mod:`agentos_obs.tracing` (one rule each, shared with the seal); they are re-exported here
so imports from ``agentos_obs.cost`` keep working.
"""

from __future__ import annotations

from agentos_obs.cost._analytics import CostAnalytics
from agentos_obs.cost._budget_report import ledger_report
from agentos_obs.cost._budget_status import (
    BUDGET_EXCEEDED,
    BUDGET_EXCEEDED_REASON,
    BUDGET_KEYS,
    BUDGET_MODES,
    BUDGET_PERIODS,
    BudgetStatus,
    budget_window,
)
from agentos_obs.cost._budgets import BudgetAlert
from agentos_obs.cost._ledger import LEDGER_SCHEMES, parse_ledger_url
from agentos_obs.tracing import UsageRollup, agent_of, model_of, user_of

__all__ = [
    "BUDGET_EXCEEDED",
    "BUDGET_EXCEEDED_REASON",
    "BUDGET_KEYS",
    "BUDGET_MODES",
    "BUDGET_PERIODS",
    "LEDGER_SCHEMES",
    "BudgetAlert",
    "BudgetStatus",
    "CostAnalytics",
    "UsageRollup",
    "agent_of",
    "budget_window",
    "ledger_report",
    "model_of",
    "parse_ledger_url",
    "user_of",
]
