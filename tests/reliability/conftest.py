"""Shared pieces of the reliability suite: hostile payloads, and a check that what was
recorded is a set of whole, non-duplicated trees."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from agentos_obs import Trace


def assert_whole_trees(traces: list[Trace]) -> None:
    """Every trace exported once, every span in one trace only, ended, with its parent in
    the same trace (or it is the root), and no negative usage."""
    trace_ids = Counter(t.trace_id for t in traces)
    assert all(n == 1 for n in trace_ids.values()), "a trace was exported twice"
    span_ids = Counter(s.span_id for t in traces for s in t.spans)
    duplicated = [sid for sid, n in span_ids.items() if n > 1]
    assert not duplicated, f"spans recorded twice: {duplicated[:5]}"
    for trace in traces:
        ids = {s.span_id for s in trace.spans}
        for span in trace.spans:
            assert span.ended, f"{span!r} exported while open"
            assert span.trace_id == trace.trace_id
            if span.parent is not None:
                assert span.parent_id in ids, f"{span!r} has its parent outside its trace"
            assert span.input_tokens >= 0 and span.output_tokens >= 0
            assert span.cost_usd is None or span.cost_usd >= 0


class HostileError(Exception):
    """What hostile payloads raise when touched."""


class Hostile:
    """A payload that raises on everything: attribute access, str, iteration, len,
    equality, hashing (a broken provider object, a proxy in a bad state)."""

    def __getattr__(self, name: str) -> Any:
        raise HostileError(f"getattr {name}")

    def __str__(self) -> str:
        raise HostileError("str")

    def __repr__(self) -> str:  # safe: the test tools (hypothesis) print examples
        return "<Hostile>"

    def __iter__(self) -> Iterator[Any]:
        raise HostileError("iter")

    def __len__(self) -> int:
        raise HostileError("len")

    def __bool__(self) -> bool:
        raise HostileError("bool")

    def __eq__(self, other: object) -> bool:
        raise HostileError("eq")

    def __hash__(self) -> int:
        raise HostileError("hash")


class UnprintableError(Exception):
    """An app exception whose ``__str__`` fails (it must still reach the app unchanged)."""

    def __str__(self) -> str:
        raise HostileError("str of an exception")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long variants (``@pytest.mark.slow``) run only when asked for with ``-m slow``; the
    default run keeps the short ones (the suite stays quick on 2 cores)."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="long variant: run with -m slow")
    for item in items:
        if "slow" in item.keywords and "reliability" in item.nodeid:
            item.add_marker(skip)
