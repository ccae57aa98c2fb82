"""Manual tracing of an agent: spans for the agent, its LLM calls, a tool and a retrieval.

Run: python examples/manual_tracing.py
Prints the trace tree, a token/cost table and the latency breakdown by stage.
"""

from __future__ import annotations

import time

import agentos_obs as obs
from agentos_obs import SpanKind


def fake_llm(prompt: str) -> tuple[str, int, int]:
    time.sleep(0.01)  # stands in for the network round trip
    return f"answer to {prompt!r}", len(prompt.split()) * 40, 60


def main() -> None:
    tracer, metrics, _logger, dashboard = obs.create_observability_stack("manual-demo")
    finished: list[obs.Trace] = []
    tracer.add_exporter(finished.append, sync=True)  # any fn(trace) is an exporter

    for user in ("alice", "bob"):
        with tracer.start_span("research-agent", SpanKind.AGENT) as agent:
            agent.set_attribute("user.id", user)
            with tracer.start_span("retrieve-docs", SpanKind.RETRIEVAL) as retrieval:
                time.sleep(0.005)
                retrieval.set_attribute("retrieval.document_count", 3)
            with tracer.start_span("plan", SpanKind.LLM):
                _, tokens_in, tokens_out = fake_llm("plan the research")
                tracer.record_llm_call("gpt-4o-mini", tokens_in, tokens_out, provider="openai")
            with tracer.start_span("web_search", SpanKind.TOOL) as tool:
                tool.set_attribute("tool.name", "web_search")
                time.sleep(0.003)
            with tracer.start_span("summarise", SpanKind.LLM):
                _, tokens_in, tokens_out = fake_llm("summarise the findings for the user")
                tracer.record_llm_call(
                    "claude-3-5-haiku", tokens_in, tokens_out, provider="anthropic"
                )

    print("Trace tree (last trace):")
    _print_tree(finished[-1])

    summary = dashboard.get_summary()
    print("\nTokens and cost by model:")
    print(f"  {'model':<20} {'calls':>5} {'input':>7} {'output':>7} {'cost USD':>10}")
    for model, row in sorted(summary["by_model"].items()):
        print(
            f"  {model:<20} {row['llm_calls']:>5} {row['input_tokens']:>7} "
            f"{row['output_tokens']:>7} {row['cost_usd']:>10.6f}"
        )
    print(f"  total cost: ${summary['cost']['total_usd']:.6f} over {summary['trace_count']} traces")

    print("\nLatency breakdown by stage (inclusive / self):")
    for row in dashboard.get_latency_breakdown():
        print(
            f"  {row['stage']:<10} n={row['count']:<3} p50={row['p50_ms']:7.2f} ms "
            f"self p50={row['self_p50_ms']:7.2f} ms"
        )
    calls = metrics.counter("llm_calls_total")
    print(f"\nPrometheus llm_calls_total (summed over its series): {calls.value:.0f}")


def _print_tree(trace: obs.Trace) -> None:
    children: dict[str | None, list[obs.Span]] = {}
    for span in trace.spans:
        children.setdefault(span.parent_id, []).append(span)

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            usage = ""
            if span.has_usage:
                cost = "unpriced" if span.cost_usd is None else f"${span.cost_usd:.6f}"
                usage = f"  {span.model_name} {span.input_tokens}+{span.output_tokens} tok {cost}"
            print(
                f"  {'  ' * depth}{span.kind.value:<9} {span.name} {span.duration_ms:.1f} ms{usage}"
            )
            walk(span.span_id, depth + 1)

    walk(None, 0)


if __name__ == "__main__":
    main()
