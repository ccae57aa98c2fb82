"""Budgets: spend per UTC calendar window and per key (user, agent, model) that alert once or
refuse the next LLM call.

:class:`BudgetAlert` is a span processor. ``on_end`` reads only the sealed
:class:`~agentos_obs.tracing.SpanRecord` of each finished span: the cost of a counted call
(``record.counts_usage``) is held against ``record.user_id``, ``record.agent`` or
``record.model``. ``on_start`` (raise mode) sees the live span, before any record exists, and
asks the tracing attribution rule of its key once per LLM span.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs._internal.guard import report
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.tracing import (
    NONE_LABEL,
    Span,
    SpanKind,
    SpanRecord,
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
    "budget_window",
]

BUDGET_PERIODS: tuple[str | None, ...] = (None, "hourly", "daily", "weekly", "monthly")
BUDGET_KEYS: tuple[str | None, ...] = (None, "user", "agent", "model")
BUDGET_MODES: tuple[str, ...] = ("alert", "raise")

# The record field each budget key reads (None: one global budget).
_RECORD_FIELD = {"user": "user_id", "agent": "agent", "model": "model"}


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


def _usd(amount: float) -> str:
    """Dollars readable at any scale: $12.50, $0.0023 (small budgets are common per user)."""
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.2g}" if amount else "$0"


def _pct(spend: float, limit: float) -> float:
    return spend / limit * 100 if limit > 0 else 0.0


def _alerting(spend: float, limit: float, threshold_pct: float) -> bool:
    return limit > 0 and _pct(spend, limit) >= threshold_pct


@dataclass(frozen=True)
class BudgetStatus:
    """Spend of one key value (or the global budget) in one window."""

    key: str | None  # the budget's key type: None, "user", "agent" or "model"
    key_value: str | None  # e.g. the user id; None for a global budget
    period: str | None
    window_start: datetime | None  # UTC; None for a lifetime budget
    window_end: datetime | None
    spend: float
    limit: float
    threshold_pct: float

    @property
    def pct(self) -> float:
        return _pct(self.spend, self.limit)

    @property
    def alerting(self) -> bool:
        return _alerting(self.spend, self.limit, self.threshold_pct)

    @property
    def exceeded(self) -> bool:
        return self.limit > 0 and self.spend >= self.limit

    def message(self) -> str:
        text = f"Budget alert: {self.pct:.1f}% of {_usd(self.limit)} spent"
        if self.key is not None:
            text += f" ({self.key}={self.key_value})"
        if self.window_start is not None:
            text += f" in the {self.period} window from {self.window_start.isoformat()}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "key_value": self.key_value,
            "period": self.period,
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "window_end": None if self.window_end is None else self.window_end.isoformat(),
            "spend": self.spend,
            "limit": self.limit,
            "pct": self.pct,
            "threshold_pct": self.threshold_pct,
            "alerting": self.alerting,
            "exceeded": self.exceeded,
        }


@dataclass(eq=False)  # identity: two budgets with equal settings are still two budgets
class BudgetAlert:
    """A spend budget; a span processor that adds the cost of every finished LLM call.

    - ``period``: None (lifetime) or "hourly" / "daily" / "weekly" / "monthly" UTC windows;
      spend starts again from 0 in each new window (windows only move forward).
    - ``key``: None (one global budget) or "user" / "agent" / "model": each value of the
      key has its own budget of ``budget_limit`` (spend with no value is tracked as "(none)").
      The values are the record's ``user_id``, ``agent`` (``agent.name``, else the enclosing
      agent span's name) and ``model``.
    - ``on_alert(status)``: called once per (window, key value) when spend reaches
      ``threshold_pct`` % of the limit. A callback that raises is reported, never re-raised.
    - ``mode="raise"``: once a key's spend reaches 100 %, the next LLM span started for that
      key raises :class:`BudgetExceeded` in the app (from ``on_start``).

    Only calls with a known cost add spend: an unpriced call or one without reported usage
    adds nothing (its cost is unknown, not $0). ``budget_limit == 0`` disables the budget
    (the prototype's default). ``current_spend`` is the spend of the current window: of the
    global budget, or summed over all key values of a keyed one (then :meth:`check` looks
    at each key value, not at this sum).
    """

    budget_limit: float = 0.0
    current_spend: float = 0.0
    threshold_pct: float = 80.0
    period: str | None = field(default=None, kw_only=True)
    key: str | None = field(default=None, kw_only=True)
    on_alert: Callable[[BudgetStatus], Any] | None = field(default=None, kw_only=True)
    mode: str = field(default="alert", kw_only=True)
    clock: Callable[[], float] = field(default=time.time, kw_only=True, repr=False)

    _spend: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _alerted: set[str | None] = field(default_factory=set, init=False, repr=False)
    _window_start: datetime | None = field(default=None, init=False, repr=False)
    _window_end: datetime | None = field(default=None, init=False, repr=False)
    _window_end_ts: float = field(default=float("inf"), init=False, repr=False)
    _record_field: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        try:
            limit = float(self.budget_limit)
            threshold = float(self.threshold_pct)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError("budget_limit and threshold_pct must be numbers") from exc
        if not limit >= 0:  # also rejects NaN
            raise ConfigurationError(f"budget_limit must be >= 0, got {self.budget_limit!r}")
        if not 0 < threshold <= 100:
            raise ConfigurationError(
                f"threshold_pct must be in (0, 100], got {self.threshold_pct!r}"
            )
        if self.period not in BUDGET_PERIODS:
            raise ConfigurationError(f"period must be one of {BUDGET_PERIODS}, got {self.period!r}")
        if self.key not in BUDGET_KEYS:
            raise ConfigurationError(f"key must be one of {BUDGET_KEYS}, got {self.key!r}")
        if self.mode not in BUDGET_MODES:
            raise ConfigurationError(f"mode must be one of {BUDGET_MODES}, got {self.mode!r}")
        if self.on_alert is not None and not callable(self.on_alert):
            raise ConfigurationError("on_alert must be callable as on_alert(status)")
        if not callable(self.clock):
            raise ConfigurationError("clock must be callable, returning epoch seconds")
        self.budget_limit, self.threshold_pct = limit, threshold
        self._record_field = None if self.key is None else _RECORD_FIELD[self.key]
        if self.period is not None:
            self._enter_window(self.clock())

    # -- prototype API ---------------------------------------------------------------
    def check(self) -> str | None:
        """A message when spend (of any key value) is at or above the threshold, else None.

        For a keyed budget the message names the key value with the highest spend.
        """
        if self.budget_limit <= 0:
            return None
        over = [s for s in self.status() if s.alerting]
        if not over:
            return None
        return max(over, key=lambda s: s.spend).message()

    # -- added -----------------------------------------------------------------------
    def add_spend(
        self,
        cost_usd: float,
        *,
        user: str | None = None,
        agent: str | None = None,
        model: str | None = None,
    ) -> BudgetStatus:
        """Add spend by hand (the span processor does this for every call with a cost)."""
        cost = float(cost_usd)
        if not 0 <= cost < float("inf"):
            raise ValueError(f"cost_usd must be a finite number >= 0, got {cost_usd!r}")
        named = {"user": user, "agent": agent, "model": model}
        value = None if self.key is None else named[self.key] or NONE_LABEL
        status = self._add(cost, value, want_status=True)
        assert status is not None
        return status

    def status(self) -> list[BudgetStatus]:
        """Spend of the current window: one entry (global) or one per key value seen."""
        with self._lock:
            self._roll(self.clock())
            if self.key is None:
                return [self._status_locked(None)]
            return [self._status_locked(v) for v in self._spend]

    def status_for(self, key_value: str | None) -> BudgetStatus:
        """Spend of one key value (``None`` = the global budget) in the current window."""
        with self._lock:
            self._roll(self.clock())
            return self._status_locked(None if self.key is None else key_value or NONE_LABEL)

    def reset(self) -> None:
        with self._lock:
            self.current_spend = 0.0
            self._spend.clear()
            self._alerted.clear()

    # -- span processor --------------------------------------------------------------
    def on_start(self, span: Span) -> None:
        """Raise mode: refuse an LLM span whose key value has spent its budget."""
        if self.mode != "raise" or span.kind is not SpanKind.LLM or self.budget_limit <= 0:
            return
        if span.attributes.get(attr.BUDGET_NOT_ENFORCED):
            return  # refused once already; its framework sends the call anyway
        key = self.key
        value: str | None = None
        if key == "user":
            value = user_of(span) or NONE_LABEL
        elif key == "agent":
            value = agent_of(span) or NONE_LABEL
        elif key == "model":
            value = model_of(span)
            if value is None:
                return  # the model is not known yet: nothing to hold the call against
        with self._lock:
            self._roll(self.clock())
            spend = self.current_spend if value is None else self._spend.get(value, 0.0)
            if spend < self.budget_limit:
                return
            status = self._status_locked(value)
        raise BudgetExceeded(
            f"Budget exceeded: {_usd(status.spend)} of {_usd(status.limit)} spent"
            + (f" ({key}={value})" if key is not None else ""),
            budget=self,
            key=value,
        )

    def on_end(self, record: SpanRecord) -> None:
        """Add the cost of a counted call; calls of unknown cost add nothing."""
        if not record.counts_usage:
            return
        cost = record.cost_usd
        if cost is None:
            return
        name = self._record_field
        value = None if name is None else getattr(record, name) or NONE_LABEL
        self._add(cost, value, want_status=False)

    # -- internals -------------------------------------------------------------------
    def _add(self, cost: float, value: str | None, *, want_status: bool) -> BudgetStatus | None:
        """Add ``cost`` to the window (and to ``value``'s spend); alert once on crossing."""
        with self._lock:
            self._roll(self.clock())
            self.current_spend += cost
            if value is None:
                spend = self.current_spend
            else:
                spend = self._spend[value] = self._spend.get(value, 0.0) + cost
            fire = _alerting(spend, self.budget_limit, self.threshold_pct) and (
                value not in self._alerted
            )
            if fire:
                self._alerted.add(value)
            # A status object is built only when someone reads it (hot path: on_end).
            status = self._status_locked(value) if fire or want_status else None
        if fire and self.on_alert is not None:
            assert status is not None
            try:
                self.on_alert(status)
            except Exception as exc:
                report("budget_alert.on_alert", exc)
        return status

    def _enter_window(self, now: float) -> None:
        assert self.period is not None
        self._window_start, self._window_end = budget_window(self.period, now)
        self._window_end_ts = self._window_end.timestamp()

    def _roll(self, now: float) -> None:
        """Start a new window when ``now`` has passed the current one (lock held)."""
        if self.period is None or now < self._window_end_ts:
            return
        self._enter_window(now)
        self.current_spend = 0.0
        self._spend.clear()
        self._alerted.clear()

    def _status_locked(self, value: str | None) -> BudgetStatus:
        spend = self.current_spend if value is None else self._spend.get(value, 0.0)
        return BudgetStatus(
            key=self.key,
            key_value=value,
            period=self.period,
            window_start=self._window_start,
            window_end=self._window_end,
            spend=spend,
            limit=self.budget_limit,
            threshold_pct=self.threshold_pct,
        )
