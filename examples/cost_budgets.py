"""Cost accounting and budgets: per-user daily budgets, an alert callback, and raise mode.

Run: python examples/cost_budgets.py
"""

from __future__ import annotations

import agentos_obs as obs
from agentos_obs import BudgetAlert, BudgetExceeded, SpanKind


def main() -> None:
    stack = obs.create_observability_stack("cost-demo")
    tracer = stack.tracer

    alerts: list[str] = []
    # Each user may spend $0.002 a day; warn at 50 %, refuse further LLM calls at 100 %.
    stack.add_budget(
        BudgetAlert(
            budget_limit=0.002,
            threshold_pct=50,
            period="daily",
            key="user",
            mode="raise",
            on_alert=lambda status: alerts.append(status.message()),
        )
    )

    def ask(user: str, tokens_in: int, tokens_out: int) -> str:
        with tracer.start_span("assistant", SpanKind.AGENT) as agent:
            agent.set_attribute("user.id", user)
            with tracer.start_span("chat", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o-mini", tokens_in, tokens_out, provider="openai")
        return "ok"

    for i in range(6):
        for user in ("alice", "bob"):
            size = 3000 if user == "alice" else 300  # alice sends long prompts
            try:
                ask(user, size, 200)
            except BudgetExceeded as exc:
                print(f"call {i} for {user}: refused ({exc})")

    print("\nAlerts raised (once per user and day):")
    for message in alerts:
        print(f"  {message}")

    summary = stack.cost.summary()
    print("\nSpend by user:")
    for user, row in sorted(summary["by_user"].items()):
        print(f"  {user:<6} ${row['cost_usd']:.6f} over {row['llm_calls']} calls")
    print(f"Total: ${summary['total_cost']:.6f}, {summary['total_tokens']} tokens")

    # A model the catalogue does not know is never priced at $0: cost is None and counted.
    with tracer.start_span("chat", SpanKind.LLM) as span:
        tracer.record_llm_call("my-private-finetune", 100, 20)
    print(
        f"\nUnknown model cost: {span.cost_usd} (unpriced={span.attributes['llm.cost.unpriced']})"
    )


if __name__ == "__main__":
    main()
