"""W3C trace-context ids: 32 lowercase hex trace id, 16 hex span id, never all zeros."""

from __future__ import annotations

import os
import random

__all__ = ["is_valid_span_id", "is_valid_trace_id", "new_span_id", "new_trace_id"]

# One generator seeded from os.urandom; getrandbits is atomic under the GIL. Reseeded in a
# forked child so two worker processes never produce the same ids.
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)

_HEX = frozenset("0123456789abcdef")


def new_trace_id() -> str:
    bits = _random.getrandbits(128)
    while not bits:  # pragma: no cover - probability 2**-128
        bits = _random.getrandbits(128)
    return f"{bits:032x}"


def new_span_id() -> str:
    bits = _random.getrandbits(64)
    while not bits:  # pragma: no cover - probability 2**-64
        bits = _random.getrandbits(64)
    return f"{bits:016x}"


def _valid(value: object, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and _HEX.issuperset(value)
        and value != "0" * length
    )


def is_valid_trace_id(value: object) -> bool:
    return _valid(value, 32)


def is_valid_span_id(value: object) -> bool:
    return _valid(value, 16)
