"""Cost analytics and budgets: running LLM spend, rolled up by model, user and agent.

Both classes keep the prototype's fields and methods and are also span processors
(``tracer.add_span_processor(obj)``): they are fed from every finished span whose usage
counts (the innermost-span rule of :attr:`Span.counts_usage`), so nothing is counted twice.

Spend only includes priced calls. A call whose model has no known price (``cost_usd is
None``) is counted in ``unpriced_calls`` and never silently treated as free.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs._internal.guard import count_drop, report
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.tracing._spans import Span, SpanKind

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

NONE_LABEL = "(none)"  # key value of spend with no user / agent / model
OTHER_LABEL = "(other)"  # rollup key that absorbs new keys once a rollup is full

BUDGET_PERIODS: tuple[str | None, ...] = (None, "hourly", "daily", "weekly", "monthly")
BUDGET_KEYS: tuple[str | None, ...] = (None, "user", "agent", "model")
BUDGET_MODES: tuple[str, ...] = ("alert", "raise")


# -- attribution ---------------------------------------------------------------------------
def user_of(span: Span) -> str | None:
    """The user a span works for: its trace's ``user.id``, else the nearest ancestor's."""
    trace = span.trace
    if trace is not None:
        user = trace.user_id
        if user is not None:
            return user
    node: Span | None = span
    while node is not None:
        value = node.attributes.get(attr.USER_ID)
        if value is not None:
            return str(value)
        node = node.parent
    return None


def agent_of(span: Span) -> str | None:
    """Name of the nearest enclosing AGENT span (the span itself included), or None."""
    agent = span.ancestor(SpanKind.AGENT)
    return None if agent is None else agent.name


def model_of(span: Span) -> str | None:
    """The model that answered (``model_name``), else the one asked for."""
    if span.model_name:
        return span.model_name
    requested = span.attributes.get(attr.LLM_REQUEST_MODEL)
    return None if requested is None else str(requested)


# -- rollups -------------------------------------------------------------------------------
class UsageRollup:
    """Token and cost sums of a set of LLM calls (one model, one user, one trace…)."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "input_tokens",
        "llm_calls",
        "output_tokens",
        "reasoning_tokens",
        "traces",
        "unpriced_llm_calls",
    )

    def __init__(self) -> None:
        self.llm_calls = 0
        self.unpriced_llm_calls = 0
        self.cost_usd = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.traces = 0  # used by the dashboard: traces that contributed

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add_span(self, span: Span) -> None:
        self.add_call(
            span.input_tokens,
            span.output_tokens,
            span.cost_usd,
            cache_read_tokens=span.cache_read_tokens,
            cache_write_tokens=span.cache_write_tokens,
            reasoning_tokens=span.reasoning_tokens,
        )

    def add_call(
        self,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float | None,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        self.llm_calls += 1
        if cost_usd is None:
            self.unpriced_llm_calls += 1
        else:
            self.cost_usd += cost_usd
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cache_write_tokens += cache_write_tokens
        self.reasoning_tokens += reasoning_tokens

    def merge(self, other: UsageRollup) -> None:
        self.llm_calls += other.llm_calls
        self.unpriced_llm_calls += other.unpriced_llm_calls
        self.cost_usd += other.cost_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.traces += other.traces

    def to_dict(self, *, with_traces: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "llm_calls": self.llm_calls,
            "unpriced_llm_calls": self.unpriced_llm_calls,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
        }
        if with_traces:
            out["traces"] = self.traces
        return out


def resolve_key(table: dict[str, Any], key: str, max_keys: int, component: str) -> str:
    """``key`` itself, or ``(other)`` once ``table`` holds ``max_keys`` other keys: memory
    stays bounded however many users or models show up."""
    if key in table or len(table) < max_keys:
        return key
    count_drop(component, reason=f"more than {max_keys} keys; extra keys go to {OTHER_LABEL}")
    return OTHER_LABEL


def rollup_slot(
    table: dict[str, UsageRollup], key: str, max_keys: int, component: str
) -> UsageRollup:
    """The rollup of ``key`` in ``table`` (created on first use; see :func:`resolve_key`)."""
    key = resolve_key(table, key, max_keys, component)
    slot = table.get(key)
    if slot is None:
        slot = table[key] = UsageRollup()
    return slot


def _check_max_keys(max_keys: int) -> None:
    if not isinstance(max_keys, int) or max_keys < 1:
        raise ConfigurationError(f"max_keys must be a positive int, got {max_keys!r}")


# -- CostAnalytics -------------------------------------------------------------------------
# eq=False: a processor is compared (and hashed) by identity, never by its running totals.
@dataclass(eq=False)
class CostAnalytics:
    """Running LLM cost and tokens; a span processor fed by finished LLM spans.

    ``cost_per_call`` keeps the prototype's name but is now a bounded ring of the costs of
    the most recent priced calls (``recent_calls`` of them, default 1,000): the prototype's
    ever-growing list leaked memory in a long-lived process. The averages come from running
    sums, so they cover every call ever recorded, not just the ring.
    """

    total_cost: float = 0.0
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Accepts any iterable of past costs (a list, as in the prototype); read as a sequence.
    cost_per_call: Sequence[float] = field(default_factory=list)
    recent_calls: int = field(default=1000, kw_only=True)
    max_keys: int = field(default=10_000, kw_only=True)

    cache_read_tokens: int = field(default=0, init=False)
    cache_write_tokens: int = field(default=0, init=False)
    reasoning_tokens: int = field(default=0, init=False)
    calls: int = field(default=0, init=False)
    unpriced_calls: int = field(default=0, init=False)
    _recent: deque[float] = field(default_factory=deque, init=False, repr=False)
    _priced_cost_sum: float = field(default=0.0, init=False, repr=False)
    _priced_calls: int = field(default=0, init=False, repr=False)
    _by_model: dict[str, UsageRollup] = field(default_factory=dict, init=False, repr=False)
    _by_user: dict[str, UsageRollup] = field(default_factory=dict, init=False, repr=False)
    _by_agent: dict[str, UsageRollup] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.recent_calls, int) or self.recent_calls < 0:
            raise ConfigurationError(f"recent_calls must be an int >= 0, got {self.recent_calls!r}")
        _check_max_keys(self.max_keys)
        seeded = [float(c) for c in self.cost_per_call]
        self._recent = deque(seeded, maxlen=self.recent_calls)
        self.cost_per_call = self._recent
        # Costs handed in at construction count as past calls (the prototype's meaning).
        self._priced_calls = self.calls = len(seeded)
        self._priced_cost_sum = sum(seeded)

    # -- prototype API ---------------------------------------------------------------
    def record_call(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float | None,
        *,
        model: str | None = None,
        user: str | None = None,
        agent: str | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """Add one LLM call. ``cost=None`` means unknown price: counted as unpriced."""
        counts = (prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens)
        if any(int(n) < 0 for n in (*counts, reasoning_tokens)):
            raise ValueError("token counts must be >= 0")
        if cost is not None and cost < 0:
            raise ValueError(f"cost must be >= 0 or None, got {cost!r}")
        prompt, completion = int(prompt_tokens), int(completion_tokens)
        price = None if cost is None else float(cost)
        extra = {
            "cache_read_tokens": int(cache_read_tokens),
            "cache_write_tokens": int(cache_write_tokens),
            "reasoning_tokens": int(reasoning_tokens),
        }
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.total_tokens += prompt + completion
            self.cache_read_tokens += extra["cache_read_tokens"]
            self.cache_write_tokens += extra["cache_write_tokens"]
            self.reasoning_tokens += extra["reasoning_tokens"]
            if price is None:
                self.unpriced_calls += 1
            else:
                self.total_cost += price
                self._priced_cost_sum += price
                self._priced_calls += 1
                self._recent.append(price)
            for table, key in (
                (self._by_model, model),
                (self._by_user, user),
                (self._by_agent, agent),
            ):
                slot = rollup_slot(table, key or NONE_LABEL, self.max_keys, "cost_analytics")
                slot.add_call(prompt, completion, price, **extra)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_cost": self.total_cost,
                "total_tokens": self.total_tokens,
                "avg_cost_per_call": (
                    self._priced_cost_sum / self._priced_calls if self._priced_calls else 0
                ),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens,
                "calls": self.calls,
                "priced_calls": self._priced_calls,
                "unpriced_calls": self.unpriced_calls,
                "by_model": {k: v.to_dict() for k, v in self._by_model.items()},
                "by_user": {k: v.to_dict() for k, v in self._by_user.items()},
                "by_agent": {k: v.to_dict() for k, v in self._by_agent.items()},
            }

    # -- span processor --------------------------------------------------------------
    def on_start(self, span: Span) -> None:
        return None

    def on_end(self, span: Span) -> None:
        if not span.counts_usage:
            return
        self.record_call(
            span.input_tokens,
            span.output_tokens,
            span.cost_usd,
            model=model_of(span),
            user=user_of(span),
            agent=agent_of(span),
            cache_read_tokens=span.cache_read_tokens,
            cache_write_tokens=span.cache_write_tokens,
            reasoning_tokens=span.reasoning_tokens,
        )


# -- budgets -------------------------------------------------------------------------------
def _usd(amount: float) -> str:
    """Dollars readable at any scale: $12.50, $0.0023 (small budgets are common per user)."""
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.2g}" if amount else "$0"


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
        return self.spend / self.limit * 100 if self.limit > 0 else 0.0

    @property
    def alerting(self) -> bool:
        return self.limit > 0 and self.pct >= self.threshold_pct

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


def _window(period: str, now: float) -> tuple[datetime, datetime]:
    """The UTC window of ``period`` that contains epoch second ``now``."""
    dt = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "hourly":
        start = dt.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":  # ISO weeks: Monday 00:00 UTC
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)  # monthly
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


@dataclass(eq=False)  # identity: two budgets with equal settings are still two budgets
class BudgetAlert:
    """A spend budget; a span processor that adds the cost of every finished LLM call.

    - ``period``: None (lifetime) or "hourly" / "daily" / "weekly" / "monthly" UTC windows;
      spend starts again from 0 in each new window (windows only move forward).
    - ``key``: None (one global budget) or "user" / "agent" / "model": each value of the
      key has its own budget of ``budget_limit`` (spend with no value is tracked as "(none)").
    - ``on_alert(status)``: called once per (window, key value) when spend reaches
      ``threshold_pct`` % of the limit. A callback that raises is reported, never re-raised.
    - ``mode="raise"``: once a key's spend reaches 100 %, the next LLM span started for that
      key raises :class:`BudgetExceeded` in the app (from ``on_start``).

    ``budget_limit == 0`` disables the budget (the prototype's default). ``current_spend``
    is the spend of the current window: of the global budget, or summed over all key values
    of a keyed one (then :meth:`check` looks at each key value, not at this sum).
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
        """Add spend by hand (the span processor calls this for every priced LLM call)."""
        cost = float(cost_usd)
        if not cost >= 0:
            raise ValueError(f"cost_usd must be >= 0, got {cost_usd!r}")
        value = self._key_value(user=user, agent=agent, model=model)
        with self._lock:
            self._roll(self.clock())
            self.current_spend += cost
            if value is not None:
                self._spend[value] = self._spend.get(value, 0.0) + cost
            status = self._status_locked(value)
            fire = status.alerting and value not in self._alerted
            if fire:
                self._alerted.add(value)
        if fire and self.on_alert is not None:
            try:
                self.on_alert(status)
            except Exception as exc:
                report("budget_alert.on_alert", exc)
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
        if self.mode != "raise" or span.kind is not SpanKind.LLM or self.budget_limit <= 0:
            return
        model = model_of(span)
        if self.key == "model" and model is None:
            return  # the model is not known yet: nothing to hold the call against
        value = self._key_value(user=user_of(span), agent=agent_of(span), model=model)
        with self._lock:
            self._roll(self.clock())
            status = self._status_locked(value)
        if status.exceeded:
            raise BudgetExceeded(
                f"Budget exceeded: {_usd(status.spend)} of {_usd(status.limit)} spent"
                + (f" ({self.key}={value})" if self.key is not None else ""),
                budget=self,
                key=value,
            )

    def on_end(self, span: Span) -> None:
        if not span.counts_usage or span.cost_usd is None:
            return
        self.add_spend(
            span.cost_usd, user=user_of(span), agent=agent_of(span), model=model_of(span)
        )

    # -- internals -------------------------------------------------------------------
    def _key_value(self, *, user: str | None, agent: str | None, model: str | None) -> str | None:
        if self.key is None:
            return None
        value = {"user": user, "agent": agent, "model": model}[self.key]
        return value or NONE_LABEL

    def _enter_window(self, now: float) -> None:
        assert self.period is not None
        self._window_start, self._window_end = _window(self.period, now)
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
