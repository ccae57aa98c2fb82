"""The LlamaIndex examples run offline as a user would run them, and show what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(script: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent / "src")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(300)
def test_query_example() -> None:
    out = run("llama_index_query.py")
    assert "answer: Paris is the capital of France, on the Seine." in out
    # Plain and streaming query: each one trace with the LLM call, its tokens and cost.
    assert out.count("trace RetrieverQueryEngine.query: ") == 2
    assert out.count("412 in + 12 out tokens") == 2
    assert "OfflineLLM.stream_complete [llm]" in out
    assert "first token after" in out
    assert "unpriced" not in out


@pytest.mark.timeout(300)
def test_agent_example() -> None:
    out = run("llama_index_agent.py")
    assert "trace FunctionAgent.run:" in out
    assert "2 LLM calls, 460 in + 36 out tokens" in out
    assert "multiply [tool]" in out
    assert "FunctionAgent.run [agent]" in out
    assert "agent answered:" in out
