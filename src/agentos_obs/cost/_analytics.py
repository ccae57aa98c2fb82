"""Cost analytics: running LLM spend and tokens, rolled up by model, user and agent.

:class:`CostAnalytics` keeps the prototype's fields and methods and is also a span processor
(``tracer.add_span_processor(obj)``). ``on_end`` reads only the sealed
:class:`~agentos_obs.tracing.SpanRecord`: every counted call (``record.llm_call``, a failed
one included) is a call; its tokens and cost count when ``record.counts_usage``; it is
attributed to ``record.model``, ``record.user_id`` and ``record.agent``. Nothing walks the
span tree, so the numbers agree with every other consumer of the records.

Spend only includes calls with a known cost. A call whose model has no price
(``unpriced_calls``) or whose provider reported no usage (``no_usage_calls``) is never
silently treated as free: ``cost_complete`` is False while any such call was seen.
``estimated_calls`` are priced from usage estimated offline; they are in the spend.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentos_obs.cost._budget_status import budget_window
from agentos_obs.cost._keys import check_max_keys, rollup_slot
from agentos_obs.errors import ConfigurationError
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    NONE_LABEL,
    CostStatus,
    Span,
    SpanKind,
    SpanRecord,
    SpanStatus,
    UsageRollup,
)

__all__ = ["CostAnalytics"]

_COMPONENT = "cost_analytics"


def _window(period: str, now: float) -> tuple[datetime, datetime]:
    """Transitional: ``store/_reader.py`` still imports this private name; it moves to
    :func:`agentos_obs.cost.budget_window` (remove once the store imports that)."""
    return budget_window(period, now)


# eq=False: a processor is compared (and hashed) by identity, never by its running totals.
@dataclass(eq=False)
class CostAnalytics:
    """Running LLM cost and tokens; a span processor fed by the records of finished calls.

    ``cost_per_call`` keeps the prototype's name but is now a bounded ring of the costs of
    the most recent calls with a known cost (``recent_calls`` of them, default 1,000): the
    prototype's ever-growing list leaked memory in a long-lived process. The averages come
    from running sums, so they cover every call ever recorded, not just the ring.
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
    no_usage_calls: int = field(default=0, init=False)
    estimated_calls: int = field(default=0, init=False)
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
        recent = self.recent_calls
        if not isinstance(recent, int) or isinstance(recent, bool) or recent < 0:
            raise ConfigurationError(f"recent_calls must be an int >= 0, got {recent!r}")
        check_max_keys(self.max_keys)
        seeded = [float(c) for c in self.cost_per_call]
        self._recent = deque(seeded, maxlen=recent)
        self.cost_per_call = self._recent
        # Costs handed in at construction count as past calls (the prototype's meaning).
        self._priced_calls = self.calls = len(seeded)
        self._priced_cost_sum = sum(seeded)

    @property
    def cost_complete(self) -> bool:
        """False once any call's cost is unknown (unpriced, or no usage reported)."""
        return self.unpriced_calls + self.no_usage_calls == 0

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
        """Add one LLM call by hand. ``cost=None`` means unknown price: counted as unpriced."""
        counts = [
            int(n)
            for n in (
                prompt_tokens,
                completion_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
            )
        ]
        if any(n < 0 for n in counts):
            raise ValueError("token counts must be >= 0")
        price = None if cost is None else float(cost)
        if price is not None and not 0 <= price < float("inf"):
            raise ValueError(f"cost must be a finite number >= 0 or None, got {cost!r}")
        # The call becomes a record like a traced one, so both take the same path.
        record = SpanRecord(
            span_id="",
            trace_id="",
            parent_id=None,
            name="record_call",
            kind=SpanKind.LLM,
            status=SpanStatus.OK,
            start_time=0,
            end_time=0,
            llm_call=True,
            usage=Usage(*counts),
            cost_usd=price,
            cost_status=CostStatus.UNPRICED if price is None else CostStatus.PRICED,
            model=model,
            user_id=user,
            agent=agent,
            sanitized=True,
        )
        self._add(record)

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
                "no_usage_calls": self.no_usage_calls,
                "estimated_calls": self.estimated_calls,
                "cost_complete": self.cost_complete,
                "by_model": {k: v.to_dict() for k, v in self._by_model.items()},
                "by_user": {k: v.to_dict() for k, v in self._by_user.items()},
                "by_agent": {k: v.to_dict() for k, v in self._by_agent.items()},
            }

    # -- span processor --------------------------------------------------------------
    def on_start(self, span: Span) -> None:
        return None

    def on_end(self, record: SpanRecord) -> None:
        if record.llm_call:
            self._add(record)

    # -- internals -------------------------------------------------------------------
    def _add(self, record: SpanRecord) -> None:
        """Count one call (``record.llm_call``): O(1), under the lock."""
        counts_usage = record.counts_usage
        cost = record.cost_usd
        with self._lock:
            self.calls += 1
            if counts_usage:
                usage = record.usage
                self.prompt_tokens += usage.input_tokens
                self.completion_tokens += usage.output_tokens
                self.total_tokens += usage.input_tokens + usage.output_tokens
                self.cache_read_tokens += usage.cache_read_tokens
                self.cache_write_tokens += usage.cache_write_tokens
                self.reasoning_tokens += usage.reasoning_tokens
                if record.cost_status is CostStatus.ESTIMATED:
                    self.estimated_calls += 1
                if cost is None:
                    self.unpriced_calls += 1
                else:
                    self.total_cost += cost
                    self._priced_cost_sum += cost
                    self._priced_calls += 1
                    self._recent.append(cost)
            else:
                self.no_usage_calls += 1
            max_keys = self.max_keys
            rollup_slot(self._by_model, record.model or NONE_LABEL, max_keys, _COMPONENT).add(
                record
            )
            rollup_slot(self._by_user, record.user_id or NONE_LABEL, max_keys, _COMPONENT).add(
                record
            )
            rollup_slot(self._by_agent, record.agent or NONE_LABEL, max_keys, _COMPONENT).add(
                record
            )
