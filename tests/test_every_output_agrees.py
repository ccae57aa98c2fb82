"""One workload, every output: metrics, cost analytics, budgets, the dashboard, the SQLite
store (and the CLI reading it), JSONL and a real OTLP receiver give the same calls, tokens by
type, cost, cost-status counts, and the same figures by model, agent and user.

The workload holds the cases where the outputs used to disagree: an AGENT span named
``FunctionAgent.run`` with ``agent.name=planner``, a failed call next to a good one, an
unpriced model and an estimated call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentos_obs import attributes as attr
from agentos_obs import create_observability_stack
from agentos_obs.cost import BudgetAlert
from agentos_obs.exporters.jsonl import JSONLExporter
from agentos_obs.exporters.otlp import OTLPExporter
from agentos_obs.store import SQLiteStore, StoreReader
from agentos_obs.tracing import SpanKind, Tracer
from otlp_receiver import OTLPReceiver

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")


def run_workload(tracer: Tracer) -> None:
    with tracer.start_span("FunctionAgent.run", SpanKind.AGENT) as agent:
        agent.set_attribute(attr.AGENT_NAME, "planner")
        agent.set_attribute(attr.USER_ID, "alice")
        with tracer.start_span("chat", SpanKind.LLM):
            tracer.record_llm_call(
                "gpt-4o", 1200, 300, provider="openai", cache_read_tokens=400, reasoning_tokens=50
            )
        with pytest.raises(TimeoutError), tracer.start_span("chat", SpanKind.LLM) as failed:
            failed.set_attribute(attr.LLM_REQUEST_MODEL, "gpt-4o")
            failed.provider = "openai"
            raise TimeoutError("provider timed out")
        with tracer.start_span("search", SpanKind.TOOL):
            pass
    with tracer.start_span("helper", SpanKind.AGENT) as helper:
        helper.set_attribute(attr.USER_ID, "bob")
        with tracer.start_span("chat", SpanKind.LLM):
            tracer.record_llm_call("claude-3-5-haiku-20241022", 800, 120, provider="anthropic")
        with tracer.start_span("chat", SpanKind.LLM):
            tracer.record_llm_call("in-house-model-x", 500, 50, provider="selfhosted")
        with tracer.start_span("chat", SpanKind.LLM) as estimated:
            estimated.set_attribute(attr.LLM_USAGE_ESTIMATED, True)
            tracer.record_llm_call("gpt-4o-mini", 640, 64, provider="openai", cache_write_tokens=0)


@pytest.fixture
def outputs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with OTLPReceiver() as receiver:
        stack = create_observability_stack("agree")
        tracer = stack.tracer
        store = SQLiteStore(tmp_path / "agree.db")
        jsonl = JSONLExporter(tmp_path / "agree.jsonl")
        otlp = OTLPExporter(receiver.endpoint, timeout_s=5, flush_interval_s=0.05)
        budget = BudgetAlert(budget_limit=1000.0, key="user")
        stack.add_budget(budget)
        for exporter in (store, jsonl, otlp):
            tracer.add_exporter(exporter)
        run_workload(tracer)
        tracer.force_flush()
        store.close()
        jsonl.close()
        otlp.shutdown()
        assert receiver.wait_for_spans(8)
        yield {
            "stack": stack,
            "budget": budget,
            "db": tmp_path / "agree.db",
            "jsonl": tmp_path / "agree.jsonl",
            "otlp_spans": list(receiver.spans),
        }


# -- each output's reading of the same facts ------------------------------------------------


def from_metrics(stack: Any) -> dict[str, Any]:
    text = stack.metrics.to_prometheus_text()
    calls: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    cost: Counter[str] = Counter()
    unpriced = no_usage = estimated = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            if sample.name == "llm_calls_total":
                calls[labels["model"]] += value
            elif sample.name == "llm_tokens_total":
                tokens[labels["type"]] += value
            elif sample.name == "llm_cost_usd_total":
                cost[labels["model"]] += value
            elif sample.name == "llm_unpriced_calls_total":
                unpriced += value
            elif sample.name == "llm_calls_without_usage_total":
                no_usage += value
            elif sample.name == "llm_estimated_calls_total":
                estimated += value
    return {
        "calls": int(sum(calls.values())),
        "calls_by_model": {k: int(v) for k, v in calls.items() if v},
        "tokens": {t: int(tokens[t]) for t in TOKEN_TYPES},
        "cost": sum(cost.values()),
        "unpriced": int(unpriced),
        "no_usage": int(no_usage),
        "estimated": int(estimated),
    }


def from_cost_analytics(stack: Any) -> dict[str, Any]:
    s = stack.cost.summary()
    return {
        "calls": s["calls"],
        "calls_by_model": {k: v["llm_calls"] for k, v in s["by_model"].items()},
        "calls_by_agent": {k: v["llm_calls"] for k, v in s["by_agent"].items()},
        "cost_by_user": {k: v["cost_usd"] for k, v in s["by_user"].items()},
        "tokens": {
            "input": s["prompt_tokens"],
            "output": s["completion_tokens"],
            "cache_read": s["cache_read_tokens"],
            "cache_write": s["cache_write_tokens"],
            "reasoning": s["reasoning_tokens"],
        },
        "cost": s["total_cost"],
        "unpriced": s["unpriced_calls"],
        "no_usage": s["no_usage_calls"],
        "estimated": s["estimated_calls"],
    }


def from_dashboard(stack: Any) -> dict[str, Any]:
    s = stack.dashboard.get_summary()
    return {
        "calls": s["llm_calls"],
        "calls_by_model": {k: v["llm_calls"] for k, v in s["by_model"].items()},
        "calls_by_agent": {k: v["llm_calls"] for k, v in s["by_agent"].items()},
        "cost_by_user": {k: v["cost_usd"] for k, v in s["by_user"].items()},
        "tokens": {t: s["tokens"][t] for t in TOKEN_TYPES},
        "cost": s["cost"]["total_usd"],
        "unpriced": s["unpriced_llm_calls"],
        "no_usage": s["no_usage_llm_calls"],
        "estimated": s["estimated_llm_calls"],
    }


def from_store(db: Path) -> dict[str, Any]:
    with StoreReader(db) as reader:
        s = reader.summary()
        by_model = reader.breakdown("model")
        by_agent = reader.breakdown("agent")
        by_user = reader.breakdown("user")
    return {
        "calls": s["llm_calls"],
        "calls_by_model": {r["key"]: r["calls"] for r in by_model if r["calls"]},
        "calls_by_agent": {r["key"]: r["calls"] for r in by_agent if r["calls"]},
        "cost_by_user": {r["key"]: r["cost_usd"] for r in by_user},
        "tokens": {t: s[f"{t}_tokens"] for t in TOKEN_TYPES},
        "cost": s["cost_usd"],
        "unpriced": s["unpriced_llm_calls"],
        "no_usage": s["no_usage_llm_calls"],
        "estimated": s["estimated_llm_calls"],
    }


def from_cli(db: Path) -> dict[str, Any]:
    def costs(by: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentos_obs",
                "costs",
                "--by",
                by,
                "--db",
                str(db),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        rows: list[dict[str, Any]] = json.loads(out.stdout)["rows"]
        return rows

    by_model = costs("model")
    return {
        "calls": sum(r["calls"] for r in by_model),
        "calls_by_model": {r["key"]: r["calls"] for r in by_model if r["calls"]},
        "calls_by_agent": {r["key"]: r["calls"] for r in costs("agent") if r["calls"]},
        "cost_by_user": {r["key"]: r["cost_usd"] for r in costs("user")},
        "cost": sum(r["cost_usd"] for r in by_model),
        "unpriced": sum(r["unpriced_llm_calls"] for r in by_model),
        "no_usage": sum(r["no_usage_llm_calls"] for r in by_model),
        "estimated": sum(r["estimated_llm_calls"] for r in by_model),
    }


def from_jsonl(path: Path) -> dict[str, Any]:
    traces = [json.loads(line) for line in path.read_text().splitlines()]
    calls: Counter[str] = Counter()
    for trace in traces:
        for span in trace["spans"]:
            if span["llm_call"]:
                calls[span["model_name"]] += 1
    return {
        "calls": sum(t["llm_calls"] for t in traces),
        "calls_by_model": dict(calls),
        "tokens": {t: sum(tr[f"{t}_tokens"] for tr in traces) for t in TOKEN_TYPES},
        "cost": sum(t["total_cost_usd"] for t in traces),
        "unpriced": sum(t["unpriced_llm_calls"] for t in traces),
        "no_usage": sum(t["no_usage_llm_calls"] for t in traces),
        "estimated": sum(t["estimated_llm_calls"] for t in traces),
    }


def from_otlp(spans: list[Any]) -> dict[str, Any]:
    calls = [s for s in spans if "agentos.cost_status" in s.attributes]
    status = Counter(s.attributes["agentos.cost_status"] for s in calls)
    by_model: Counter[str] = Counter(s.attributes.get("gen_ai.response.model") for s in calls)
    keys = {
        "input": "gen_ai.usage.input_tokens",
        "output": "gen_ai.usage.output_tokens",
        "cache_read": "gen_ai.usage.cache_read.input_tokens",
        "cache_write": "gen_ai.usage.cache_creation.input_tokens",
        "reasoning": "gen_ai.usage.reasoning.output_tokens",
    }
    return {
        "calls": len(calls),
        "calls_by_model": dict(by_model),
        "tokens": {t: sum(int(s.attributes.get(k, 0)) for s in calls) for t, k in keys.items()},
        "cost": sum(float(s.attributes.get("gen_ai.usage.cost", 0.0)) for s in calls),
        "unpriced": status["unpriced"],
        "no_usage": status["no_usage"],
        "estimated": status["estimated"],
    }


# -- the agreement --------------------------------------------------------------------------


def test_every_output_gives_the_same_numbers(outputs: dict[str, Any]) -> None:
    stack = outputs["stack"]
    readings = {
        "metrics": from_metrics(stack),
        "cost_analytics": from_cost_analytics(stack),
        "dashboard": from_dashboard(stack),
        "store": from_store(outputs["db"]),
        "cli": from_cli(outputs["db"]),
        "jsonl": from_jsonl(outputs["jsonl"]),
        "otlp": from_otlp(outputs["otlp_spans"]),
    }
    expected = readings["cost_analytics"]
    assert expected["calls"] == 5  # the failed call is a call; the wrapper agent spans are not
    assert expected["unpriced"] == 1 and expected["no_usage"] == 1 and expected["estimated"] == 1
    assert expected["cost"] > 0
    assert expected["calls_by_agent"] == {"planner": 2, "helper": 3}
    assert set(expected["cost_by_user"]) == {"alice", "bob"}

    facts: dict[str, dict[str, Any]] = defaultdict(dict)
    for output, reading in readings.items():
        for fact, value in reading.items():
            facts[fact][output] = value
    for fact, by_output in facts.items():
        reference = expected.get(fact, next(iter(by_output.values())))
        for output, value in by_output.items():
            if isinstance(reference, float):
                assert value == pytest.approx(reference, rel=1e-9), (fact, output, by_output)
            elif (
                isinstance(reference, dict)
                and reference
                and isinstance(next(iter(reference.values())), float)
            ):
                assert value.keys() == reference.keys(), (fact, output, by_output)
                for key in reference:
                    assert value[key] == pytest.approx(reference[key]), (fact, output, key)
            else:
                assert value == reference, (fact, output, by_output)

    budget = outputs["budget"]
    spend = {s.key_value: s.spend for s in budget.status()}
    assert spend.keys() == expected["cost_by_user"].keys()
    for user, cost in expected["cost_by_user"].items():
        assert spend[user] == pytest.approx(cost)
