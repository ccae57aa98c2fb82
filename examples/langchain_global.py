"""Global opt-in: trace every LangChain run of an app that passes no callbacks at all.

``agentos_obs.instrument()`` hooks LangChain once for the whole process — every thread
(plain ThreadPoolExecutor workers included) and every asyncio task — and reports to the
default stack (tracer, metrics, dashboard). The "app" below knows nothing about agentos_obs.
Setting ``AGENTOS_OBS_AUTO_INSTRUMENT=1`` before the import does the same.

    python examples/langchain_global.py
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.language_models import LangSmithParams
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import agentos_obs as obs


# -- the app: plain LangChain, no callbacks, no agentos_obs --------------------------------
class OfflineModel(GenericFakeChatModel):
    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="anthropic", ls_model_name="claude-3-5-haiku-latest")


REPLY = AIMessage(
    "Summary: all good.",
    usage_metadata={"input_tokens": 120, "output_tokens": 15, "total_tokens": 135},
    response_metadata={"model_name": "claude-3-5-haiku-20241022"},
)
CHAIN = (
    ChatPromptTemplate.from_messages([("human", "Summarise ticket {n}")])
    | OfflineModel(messages=itertools.repeat(REPLY))  # itertools.repeat: thread-safe
    | StrOutputParser()
)


def summarise_tickets_in_threads(count: int) -> list[str]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda n: CHAIN.invoke({"n": n}), range(count)))


async def summarise_tickets_async(count: int) -> list[str]:
    return list(await asyncio.gather(*(CHAIN.ainvoke({"n": n}) for n in range(count))))


# -- observability, added from outside -----------------------------------------------------
def main() -> None:
    obs.instrument()  # LangChain (and LlamaIndex if installed), reporting to the default stack
    try:
        threaded = summarise_tickets_in_threads(8)
        concurrent = asyncio.run(summarise_tickets_async(12))
    finally:
        obs.uninstrument()
    CHAIN.invoke({"n": "not traced"})  # after uninstrument(): no trace

    summary = obs.get_stack().dashboard.get_summary()
    print(f"app results: {len(threaded)} threaded + {len(concurrent)} async")
    print(f"traces recorded: {summary['total_traces']} (spans: {summary['span_count']})")
    print(f"LLM calls: {summary['llm_calls']}, tokens: {summary['tokens']['total']}")
    print(f"cost: ${summary['cost']['total_usd']:.6f}, error rate: {summary['error_rate']}")
    for model, rollup in summary["by_model"].items():
        print(f"  {model}: {rollup['llm_calls']} calls, ${rollup['cost_usd']:.6f}")


if __name__ == "__main__":
    main()
