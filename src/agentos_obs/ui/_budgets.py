"""Budgets shown on the dashboard: the ``--budget 10/day`` spec and spend against it.

A dashboard budget is a display: the store's spend in the current UTC window of a period,
against a limit. (Budgets that act on the app, ``BudgetAlert``, live in ``agentos_obs.cost``.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentos_obs.store import StoreReader

__all__ = ["Budget", "budget_status", "parse_budget"]

_PERIODS = {
    "hour": "hourly", "hourly": "hourly", "h": "hourly",
    "day": "daily", "daily": "daily", "d": "daily",
    "week": "weekly", "weekly": "weekly", "w": "weekly",
    "month": "monthly", "monthly": "monthly", "mo": "monthly",
    "total": None, "all": None,
}  # fmt: skip
_BUDGET = re.compile(r"^\s*\$?(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*$", re.I)


@dataclass(frozen=True)
class Budget:
    """A spend limit shown on the dashboard: ``limit_usd`` per calendar ``period`` (UTC)."""

    limit_usd: float
    period: str | None  # hourly daily weekly monthly, None = all time

    @property
    def name(self) -> str:
        return f"${self.limit_usd:g} " + (self.period or "all time")


def parse_budget(spec: str) -> Budget:
    """``10/day``, ``$200/month``, ``50`` (all time) -> :class:`Budget` (ValueError if bad)."""
    match = _BUDGET.match(spec)
    period_word = (match.group(2) or "total").lower() if match else ""
    limit = float(match.group(1)) if match else 0.0
    if not match or period_word not in _PERIODS or not 0 < limit < float("inf"):
        raise ValueError(
            f"invalid budget {spec!r}: use USD[/PERIOD] with PERIOD one of hour, day, week, "
            "month, total (e.g. 10/day)"
        )
    return Budget(limit, _PERIODS[period_word])


def budget_status(
    reader: StoreReader, budgets: Sequence[Budget], now: float | None = None
) -> list[dict[str, Any]]:
    """Each budget's spend in its current window, as the ``/api/budgets`` rows."""
    now = time.time() if now is None else now
    result = []
    for budget in budgets:
        spend = reader.spend(budget.period, now)
        spent = spend["spent_usd"]
        start, end = spend["window_start"], spend["window_end"]
        result.append(
            {
                "name": budget.name,
                "period": budget.period or "all time",
                "limit_usd": budget.limit_usd,
                "spent_usd": spent,
                "fraction": spent / budget.limit_usd,
                "window_start": start.isoformat() if start else None,
                "window_end": end.isoformat() if end else None,
                "status": "over" if spent >= budget.limit_usd else "ok",
            }
        )
    return result
