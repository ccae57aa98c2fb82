"""What estimating a call's usage costs: ``estimate_usage`` alone, and one LangChain model run
that ends without usage (estimated) against one that reports it.

    .venv/bin/python benchmarks/bench_estimate.py [--rounds 15] [--inner 300]

Estimation runs where the call ends, on the caller's thread (the thread or task that
received the model's answer); nothing of it runs on another thread. It only runs for a call
that ended without provider usage. The tokenizer's first load (o200k: ~0.2 s) is outside the
figures: it happens once per process, before the first estimate or at
``tokenizer_available()``.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import environment, interleaved, table

import agentos_obs.pricing._estimate as est
from agentos_obs.pricing import estimate_usage, tokenizer_available

SHORT = [{"role": "user", "content": "Hello!"}]
PARAGRAPH = (
    "Observability for agent pipelines means knowing, for every model call, what was asked, "
    "what came back, how long it took and what it cost. "
)
CHAT = [
    {"role": "system", "content": "You are a helpful assistant. " * 4},
    {"role": "user", "content": PARAGRAPH * 4},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"name": "search", "arguments": {"query": "agent tracing cost"}}],
    },
    {"role": "tool", "content": PARAGRAPH * 6, "tool_call_id": "call_1"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} the knowledge base",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        },
    }
    for name in ("search", "summarise")
]
RAG = [{"role": "user", "content": PARAGRAPH * 150}]  # ~20,000 characters
ANSWER = PARAGRAPH * 2


def _size(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages)


def langchain_cases() -> dict[str, Any]:
    """One model run through the handler's callbacks (no LangChain dispatch around them)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    from agentos_obs.integrations.langchain import AgentOSCallbackHandler
    from agentos_obs.tracing import Tracer

    handler = AgentOSCallbackHandler(tracer=Tracer())
    messages = [SystemMessage("Be brief."), HumanMessage(PARAGRAPH * 4)]
    meta = {"ls_provider": "openai", "ls_model_name": "gpt-4o-mini"}
    reported = AIMessage(
        ANSWER,
        usage_metadata={"input_tokens": 120, "output_tokens": 60, "total_tokens": 180},
        response_metadata={"model_name": "gpt-4o-mini-2024-07-18"},
    )
    silent = AIMessage(ANSWER, response_metadata={"model_name": "gpt-4o-mini-2024-07-18"})

    def run(answer: AIMessage) -> None:
        run_id = uuid.uuid4()
        handler.on_chat_model_start(
            {"name": "ChatOpenAI"}, [messages], run_id=run_id, metadata=meta
        )
        result = LLMResult(generations=[[ChatGeneration(message=answer)]])
        handler.on_llm_end(result, run_id=run_id)

    return {
        "LangChain run, usage reported": lambda: run(reported),
        "LangChain run, usage estimated": lambda: run(silent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=300)
    args = parser.parse_args()
    assert tokenizer_available("gpt-4o-mini"), "pip install 'agentos-obs[tokenizers]'"

    def tokenizer(messages: list[dict[str, Any]], tools: Any = ()) -> Any:
        return lambda: estimate_usage("gpt-4o-mini", messages=messages, tools=tools, output=ANSWER)

    def approx(messages: list[dict[str, Any]], tools: Any = ()) -> Any:
        return lambda: estimate_usage("llama3", messages=messages, tools=tools, output=ANSWER)

    cases = {
        f"short chat ({_size(SHORT)} chars) — o200k": tokenizer(SHORT),
        f"tool loop ({_size(CHAT)} chars, 2 tools) — o200k": tokenizer(CHAT, TOOLS),
        f"RAG prompt ({_size(RAG)} chars) — o200k": tokenizer(RAG),
        f"short chat ({_size(SHORT)} chars) — chars/4": approx(SHORT),
        f"tool loop ({_size(CHAT)} chars, 2 tools) — chars/4": approx(CHAT, TOOLS),
        f"RAG prompt ({_size(RAG)} chars) — chars/4": approx(RAG),
    }
    results = interleaved(cases, rounds=args.rounds, inner=args.inner, warmup=20)
    runs = interleaved(langchain_cases(), rounds=args.rounds, inner=args.inner, warmup=50)

    print(f"# Estimating a call's usage — {environment()}")
    print(f"{args.rounds} interleaved rounds × {args.inner} calls; median µs per call,")
    print("all on the caller's thread (nothing of it runs on another thread)\n")
    print("## estimate_usage (request + a 300-character answer)\n")
    print(table(results))
    print("\n## one LangChain model run through the handler\n")
    print(table(runs, baseline="LangChain run, usage reported"))
    print(f"\ntexts longer than {est.MAX_COUNTED_CHARS:,} characters are counted on a prefix")


if __name__ == "__main__":
    main()
