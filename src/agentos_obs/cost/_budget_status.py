"""What a budget reports: UTC calendar windows, :class:`BudgetStatus` and its messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "BUDGET_EXCEEDED",
    "BUDGET_EXCEEDED_REASON",
    "BUDGET_KEYS",
    "BUDGET_MODES",
    "BUDGET_PERIODS",
    "BudgetStatus",
    "budget_window",
    "usd",
]

BUDGET_PERIODS: tuple[str | None, ...] = (None, "hourly", "daily", "weekly", "monthly")
BUDGET_KEYS: tuple[str | None, ...] = (None, "user", "agent", "model", "trace")
BUDGET_MODES: tuple[str, ...] = ("alert", "raise")

# Set on the LLM span a budget refused (raise mode) or flagged (alert mode), and on its
# trace's attributes (TraceRecord.attributes, the store's traces.attributes JSON): the
# names of the budgets exceeded, comma-separated. The reason is the human sentence.
BUDGET_EXCEEDED = "budget.exceeded"
# Ten calls of $0.10 sum to 0.9999999999999999: that is $1.00 spent, 100 % used.
_ALMOST = 1 - 1e-9
BUDGET_EXCEEDED_REASON = "budget.exceeded.reason"


def budget_window(period: str, now: float) -> tuple[datetime, datetime]:
    """The UTC window ``[start, end)`` of ``period`` ("hourly", "daily", "weekly" — ISO weeks
    from Monday — or "monthly") that contains epoch second ``now``."""
    dt = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "hourly":
        start = dt.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period != "monthly":
        raise ValueError(f"period must be one of {BUDGET_PERIODS[1:]}, got {period!r}")
    start = day.replace(day=1)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def usd(amount: float) -> str:
    """Dollars readable at any scale: $12.50, $0.0023 (small budgets are common per user)."""
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.2g}" if amount else "$0"


@dataclass(frozen=True)
class BudgetStatus:
    """Spend of one key value (or the global budget) in one window.

    ``pct`` is the highest of the fractions used of each limit the budget sets (USD, LLM
    calls, tokens), in percent; ``exceeded`` is true once any limit is reached.
    """

    key: str | None  # the budget's key type: None, "user", "agent", "model" or "trace"
    key_value: str | None  # e.g. the user id; None for a global budget
    period: str | None
    window_start: datetime | None  # UTC; None for a lifetime budget or a run
    window_end: datetime | None
    spend: float
    limit: float  # USD; 0: no USD limit
    threshold_pct: float
    name: str = ""
    calls: int = 0
    tokens: int = 0
    max_llm_calls: int | None = None
    max_tokens: int | None = None

    def _fractions(self) -> list[tuple[float, str]]:
        found = []
        if self.limit > 0:
            found.append((self.spend / self.limit, "usd"))
        if self.max_llm_calls:
            found.append((self.calls / self.max_llm_calls, "calls"))
        if self.max_tokens:
            found.append((self.tokens / self.max_tokens, "tokens"))
        return found

    def _dominant(self) -> str:
        fractions = self._fractions()
        return max(fractions)[1] if fractions else "usd"

    @property
    def pct(self) -> float:
        fractions = self._fractions()
        return max(fractions)[0] * 100 if fractions else 0.0

    @property
    def alerting(self) -> bool:
        return bool(self._fractions()) and self.pct >= self.threshold_pct * _ALMOST

    @property
    def exceeded(self) -> bool:
        return any(fraction >= _ALMOST for fraction, _ in self._fractions())

    def used(self) -> str:
        """``$0.85 of $1.00 spent``, ``5 of 5 LLM calls``, ``12,000 of 10,000 tokens``."""
        which = self._dominant()
        if which == "calls":
            return f"{self.calls:,} of {self.max_llm_calls:,} LLM calls"
        if which == "tokens":
            return f"{self.tokens:,} of {self.max_tokens:,} tokens"
        return f"{usd(self.spend)} of {usd(self.limit)} spent"

    def where(self) -> str:
        text = ""
        if self.key is not None:
            text += f" ({self.key}={self.key_value})"
        if self.window_start is not None:
            text += f" in the {self.period} window from {self.window_start.isoformat()}"
        return text

    def message(self) -> str:
        which = self._dominant()
        if which == "usd":
            text = f"Budget alert: {self.pct:.1f}% of {usd(self.limit)} spent"
        else:
            text = f"Budget alert: {self.pct:.1f}% used, {self.used()}"
        return text + self.where()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "key_value": self.key_value,
            "period": self.period,
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "window_end": None if self.window_end is None else self.window_end.isoformat(),
            "spend": self.spend,
            "limit": self.limit,
            "calls": self.calls,
            "max_llm_calls": self.max_llm_calls,
            "tokens": self.tokens,
            "max_tokens": self.max_tokens,
            "pct": self.pct,
            "threshold_pct": self.threshold_pct,
            "alerting": self.alerting,
            "exceeded": self.exceeded,
        }
