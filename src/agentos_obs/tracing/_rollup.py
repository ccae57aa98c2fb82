"""The one rollup: sums over counted calls, built once per trace from its records and merged
per key (model, agent, user) by every consumer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agentos_obs.tracing._kinds import CostStatus

if TYPE_CHECKING:
    from agentos_obs.tracing._records import SpanRecord

__all__ = ["NONE_LABEL", "UsageRollup"]

NONE_LABEL = "(none)"  # key of spend with no model / agent / user


class UsageRollup:
    """Sums over a set of counted calls (one trace, one model, one user…).

    ``llm_calls`` counts every call; ``cost_usd`` sums only those with a known cost, and
    ``unpriced_llm_calls``, ``no_usage_llm_calls`` and ``estimated_llm_calls`` say how many
    calls the cost leaves out or estimates. :attr:`cost_complete` is False when any call's
    cost is unknown.
    """

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "estimated_llm_calls",
        "input_tokens",
        "llm_calls",
        "no_usage_llm_calls",
        "output_tokens",
        "reasoning_tokens",
        "traces",
        "unpriced_llm_calls",
    )

    def __init__(self) -> None:
        self.llm_calls = 0
        self.unpriced_llm_calls = 0
        self.no_usage_llm_calls = 0
        self.estimated_llm_calls = 0
        self.cost_usd = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.traces = 0

    @classmethod
    def of(cls, records: Iterable[SpanRecord]) -> UsageRollup:
        rollup = cls()
        for record in records:
            if record.llm_call:
                rollup.add(record)
        return rollup

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def unknown_cost_calls(self) -> int:
        """Calls whose cost is not in ``cost_usd``: unpriced or without reported usage."""
        return self.unpriced_llm_calls + self.no_usage_llm_calls

    @property
    def cost_complete(self) -> bool:
        return self.unknown_cost_calls == 0

    def add(self, record: SpanRecord) -> None:
        """Add one counted call (``record.llm_call`` must be true)."""
        self.llm_calls += 1
        status = record.cost_status
        if status is CostStatus.NO_USAGE:
            self.no_usage_llm_calls += 1
            return
        if status is CostStatus.ESTIMATED:
            self.estimated_llm_calls += 1
        cost = record.cost_usd
        if cost is None:
            self.unpriced_llm_calls += 1
        else:
            self.cost_usd += cost
        usage = record.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.reasoning_tokens += usage.reasoning_tokens

    def merge(self, other: UsageRollup) -> None:
        self.llm_calls += other.llm_calls
        self.unpriced_llm_calls += other.unpriced_llm_calls
        self.no_usage_llm_calls += other.no_usage_llm_calls
        self.estimated_llm_calls += other.estimated_llm_calls
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
            "no_usage_llm_calls": self.no_usage_llm_calls,
            "estimated_llm_calls": self.estimated_llm_calls,
            "cost_usd": self.cost_usd,
            "cost_complete": self.cost_complete,
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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UsageRollup):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in UsageRollup.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UsageRollup({self.to_dict()})"
