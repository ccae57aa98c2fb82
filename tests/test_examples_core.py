"""The core examples run offline and print what they promise (so none rots)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manual_tracing_prints_tree_costs_and_breakdown() -> None:
    out = run_example("manual_tracing.py")
    assert out.returncode == 0, out.stderr
    assert "research-agent" in out.stdout and "web_search" in out.stdout
    assert "gpt-4o-mini" in out.stdout and "claude-3-5-haiku" in out.stdout
    assert "total cost: $0.000" in out.stdout and "over 2 traces" in out.stdout
    assert "self p50" in out.stdout
    assert "llm_calls_total (summed over its series): 4" in out.stdout


def test_cost_budgets_alerts_once_and_refuses_over_budget_calls() -> None:
    out = run_example("cost_budgets.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Budget alert:") == 1  # once per user and day
    assert "refused (Budget exceeded" in out.stdout and "for bob: refused" not in out.stdout
    assert "Unknown model cost: None (unpriced=True)" in out.stdout


@pytest.mark.parametrize("name", ["logging_bridge.py"])
def test_logging_bridge_lines_carry_the_trace_id(name: str) -> None:
    import json

    out = run_example(name)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    inside = [e for e in lines if e["message"] in ("planning checkout", "price cache miss")]
    assert len(inside) == 2 and inside[0]["trace_id"] == inside[1]["trace_id"] != ""
    assert inside[0]["span_id"] != inside[1]["span_id"]
    assert inside[0]["cart_items"] == 3
    outside = next(e for e in lines if e["message"] == "outside any span")
    assert outside["trace_id"] == ""
    refund = next(e for e in lines if e["message"] == "refund issued")
    assert refund["order_id"] == "A-17" and len(refund["trace_id"]) == 32
