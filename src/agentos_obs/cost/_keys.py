"""Bounded per-key tables of :class:`~agentos_obs.tracing.UsageRollup`: memory stays bounded
however many users, agents or models show up (CostAnalytics and the dashboard share them)."""

from __future__ import annotations

from typing import Any

from agentos_obs._internal.guard import count_drop
from agentos_obs.errors import ConfigurationError
from agentos_obs.tracing import UsageRollup

__all__ = ["OTHER_LABEL", "check_max_keys", "resolve_key", "rollup_slot"]

OTHER_LABEL = "(other)"  # rollup key that absorbs new keys once a table is full


def resolve_key(table: dict[str, Any], key: str, max_keys: int, component: str) -> str:
    """``key`` itself, or ``(other)`` once ``table`` holds ``max_keys`` other keys."""
    if key in table or len(table) < max_keys:
        return key
    count_drop(component, reason=f"more than {max_keys} keys; extra keys go to {OTHER_LABEL}")
    return OTHER_LABEL


def rollup_slot(
    table: dict[str, UsageRollup], key: str, max_keys: int, component: str
) -> UsageRollup:
    """The rollup of ``key`` in ``table``, created on first use (see :func:`resolve_key`)."""
    slot = table.get(key)
    if slot is not None:
        return slot
    key = resolve_key(table, key, max_keys, component)
    slot = table.get(key)
    if slot is None:
        slot = table[key] = UsageRollup()
    return slot


def check_max_keys(max_keys: int) -> None:
    if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
        raise ConfigurationError(f"max_keys must be a positive int, got {max_keys!r}")
