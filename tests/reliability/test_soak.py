"""Soak: many invocations through the full default stack (metrics, dashboard, cost
analytics), with the process's resident set size sampled; fails when memory grows beyond a
small bound per invocation.

Bounded structures (the dashboard's ring of 1,000 recent traces, cost and latency sketches,
label sets) fill up during a warm-up longer than their capacity; growth is the
least-squares slope of RSS (after a full collection) over the samples that follow. A leak of
one span per run is ~1 KB per invocation, far above the bounds.

Default run: a short variant (a few thousand invocations). ``-m slow``: 100,000.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentos_obs import ObservabilityStack, create_observability_stack
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.testing import FakeChatModel

QUESTION = {"question": "What is the capital of France?"}
# RSS growth allowed per invocation: short runs see more allocator noise than long ones.
SHORT_BOUND_BYTES = 150
LONG_BOUND_BYTES = 24


def _langchain_app() -> tuple[Callable[[], Any], ObservabilityStack, AgentOSCallbackHandler]:
    stack = create_observability_stack("soak")
    handler = AgentOSCallbackHandler(tracer=stack.tracer)
    chain = (
        ChatPromptTemplate.from_messages([("human", "{question}")])
        | FakeChatModel()
        | StrOutputParser()
    )
    config: Any = {"callbacks": [handler], "metadata": {"user_id": "u1", "session_id": "s1"}}
    return (lambda: chain.invoke(QUESTION, config=config)), stack, handler


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(op: Callable[[], Any], warmup: int, measured: int, samples: int = 10) -> float:
    """Bytes of RSS gained per invocation over ``measured`` invocations after ``warmup``."""
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("RSS sampling needs /proc")
    for _ in range(warmup):
        op()
    points: list[tuple[int, int]] = []
    step = max(1, measured // samples)
    for i in range(1, measured + 1):
        op()
        if i % step == 0:
            gc.collect()
            points.append((i, _rss()))
    n = len(points)
    mx = sum(i for i, _ in points) / n
    my = sum(r for _, r in points) / n
    return sum((i - mx) * (r - my) for i, r in points) / sum((i - mx) ** 2 for i, _ in points)


def test_short_soak_langchain_memory_is_flat() -> None:
    op, stack, handler = _langchain_app()
    growth = rss_growth(op, warmup=3000, measured=4000)
    assert growth < SHORT_BOUND_BYTES, f"RSS grows {growth:.0f} bytes per invocation"
    assert handler.open_run_count == 0
    assert stack.tracer.active_trace_count == 0
    assert stack.dashboard.get_summary()["trace_count"] == 7000


def test_short_soak_llama_index_memory_is_flat() -> None:
    pytest.importorskip("llama_index.core")
    import agentos_obs.integrations.llama_index as li_integration
    from li_fakes import UsageLLM, make_index

    stack = create_observability_stack("soak")
    engine = make_index().as_query_engine(llm=UsageLLM())
    li_integration.instrument(tracer=stack.tracer)
    try:
        growth = rss_growth(lambda: engine.query("capital of France?"), 1200, 1500)
        handler = li_integration.instrumented()
        assert handler is not None and handler.open_span_count == 0
    finally:
        li_integration.uninstrument()
    assert growth < SHORT_BOUND_BYTES, f"RSS grows {growth:.0f} bytes per invocation"
    assert stack.tracer.active_trace_count == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_soak_100k_invocations_rss_is_flat() -> None:
    op, stack, handler = _langchain_app()
    growth = rss_growth(op, warmup=20_000, measured=80_000, samples=16)
    assert growth < LONG_BOUND_BYTES, f"RSS grows {growth:.1f} bytes per invocation"
    assert handler.open_run_count == 0
    assert stack.tracer.active_trace_count == 0
