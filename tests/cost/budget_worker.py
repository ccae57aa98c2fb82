"""One app process for the multi-process budget tests: concurrent LangChain runs (an LCEL
chain over the fake chat model) for a few users, under a per-user daily BudgetAlert on a
shared ledger.

Protocol: ``python budget_worker.py '<json config>'`` prints ``ready``, waits for a line on
stdin (so every worker starts at once), runs, then prints one JSON line of what it saw.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: lc_fakes

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from agentos_obs.cost import BudgetAlert
from agentos_obs.errors import BudgetExceeded
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.pricing import PriceCatalog
from agentos_obs.testing import FakeChatModel
from agentos_obs.tracing import Tracer, TraceRecord
from lc_fakes import PRICES


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    tracer = Tracer(f"worker-{cfg['worker']}", pricing=PriceCatalog(overrides=PRICES))
    alerts: list[str | None] = []
    budget = BudgetAlert(
        budget_limit=cfg["limit"],
        period="daily",
        key="user",
        mode="raise",
        ledger=cfg["ledger"],
        cache_ttl_s=cfg["cache_ttl_s"],
        on_alert=lambda status: alerts.append(status.key_value),
    )
    tracer.add_span_processor(budget)
    lock = threading.Lock()
    spent: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    errors: list[str] = []

    def export(trace: TraceRecord) -> None:
        with lock:
            spent[str(trace.user_id)] += trace.rollup.cost_usd
            calls[str(trace.user_id)] += trace.rollup.llm_calls - trace.rollup.no_usage_llm_calls

    tracer.add_exporter(export, sync=True)
    handler = AgentOSCallbackHandler(tracer=tracer)
    model = FakeChatModel(
        input_tokens=cfg["input_tokens"],
        output_tokens=cfg["output_tokens"],
        latency_s=cfg["delay_s"],
    )
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | model | StrOutputParser()
    users: list[str] = cfg["users"]
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + cfg.get("duration_s", 1e9)

    def work(n: int) -> None:
        i = 0
        while i < cfg.get("runs", 10**9) and time.monotonic() < deadline:
            user = users[(n + i) % len(users)]
            i += 1
            try:
                chain.invoke(
                    {"q": "hello"}, config={"callbacks": [handler], "metadata": {"user_id": user}}
                )
                with lock:
                    runs[user] += 1
            except BudgetExceeded:
                with lock:
                    refused[user] += 1
            except Exception as exc:  # the test fails on any
                with lock:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(cfg["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flushed = budget.flush(timeout_s=20)
    health = budget.ledger_health()
    status = {s.key_value: s.spend for s in budget.status()}
    budget.close()
    return {
        "worker": cfg["worker"],
        "spent": dict(spent),
        "calls": dict(calls),
        "runs": dict(runs),
        "refused": dict(refused),
        "alerts": alerts,
        "errors": errors,
        "flushed": flushed,
        "health": health,
        "status": status,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
