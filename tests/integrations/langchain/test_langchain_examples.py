"""The LangChain examples run offline as scripts and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run_example(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTOS_OBS", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_lcel_example() -> None:
    out = run_example("langchain_lcel.py")
    assert "answer: Paris is the capital of France." in out
    assert out.count("user=alice spans=4 tokens=24+8") == 2
    assert "OfflineGPT [llm] ok" in out and "model=gpt-4o-mini-2024-07-18" in out
    assert "unpriced" not in out


def test_langgraph_agent_example() -> None:
    out = run_example("langgraph_agent.py")
    assert "answer: It is 18°C in Lyon" in out
    assert "travel_agent [agent]" in out
    assert "get_weather [tool] call_id=call_w1" in out and "add [tool] call_id=call_a1" in out
    assert "llm_calls=3 tokens=1050+120" in out


def test_global_example() -> None:
    out = run_example("langchain_global.py")
    assert "app results: 8 threaded + 12 async" in out
    assert "traces recorded: 20 (spans: 80)" in out  # the call after uninstrument() is not
    assert "LLM calls: 20, tokens: 2700" in out
