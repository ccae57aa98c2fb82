"""Prometheus series of budgets: spend and limit per budget with bounded label values, what
this process refused and alerted, and the ledger's health."""

from __future__ import annotations

import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis_server import RedisServer, redis_fixture

from agentos_obs.cost import BudgetAlert
from agentos_obs.cost._budget_metrics import budget_metrics
from agentos_obs.errors import BudgetExceeded
from agentos_obs.metrics import MetricsRegistry
from agentos_obs.stack import create_observability_stack
from agentos_obs.tracing import SpanKind, Tracer
from conftest import require_binary

redis_server = redis_fixture()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_spend_and_limits_with_bounded_key_values() -> None:
    registry, tracer = MetricsRegistry(), Tracer()
    by_user = BudgetAlert(budget_limit=1.0, key="user", period="daily")
    runs = BudgetAlert(key="trace", max_llm_calls=2, max_tokens=10_000, mode="raise")
    for budget in (by_user, runs):
        tracer.add_span_processor(budget)
        budget_metrics(registry).add(budget)
    for n in range(30):  # more users than the 20 series a budget may have
        by_user.add_spend(0.01 * (n + 1), user=f"user{n:02d}")
    with pytest.raises(BudgetExceeded), tracer.start_trace("loop"):
        for _ in range(3):  # calls without usage are still calls
            with tracer.start_span("call", SpanKind.LLM):
                pass
    text = registry.to_prometheus_text()

    spend = samples(text, "agentos_obs_budget_spend_usd")
    users = {dict(k)["key_value"]: v for k, v in spend.items() if dict(k)["budget"] == "user-daily"}
    assert len(users) == 21  # the top 20 and the rest summed
    assert users["user29"] == pytest.approx(0.30)
    assert users["(other)"] == pytest.approx(sum(0.01 * (n + 1) for n in range(10)))
    assert not any(dict(k)["budget"] == "per-run" for k in spend)  # no series per run
    limits = {
        tuple(v for _, v in k): value
        for k, value in samples(text, "agentos_obs_budget_limit").items()
    }
    assert limits == {
        ("user-daily", "usd"): 1.0,
        ("per-run", "llm_calls"): 2.0,
        ("per-run", "tokens"): 10_000.0,
    }
    refused = samples(text, "agentos_obs_budget_refused_total")
    assert refused[(("budget", "per-run"),)] == runs.counts["refused"] == 1
    exceeded = samples(text, "agentos_obs_budget_exceeded_keys")
    assert exceeded[(("budget", "per-run"),)] == 1.0  # the looping run
    assert exceeded[(("budget", "user-daily"),)] == 0.0
    assert samples(text, "agentos_obs_budget_ledger_up") == {(("ledger", "memory"),): 1.0}


def test_the_exposition_passes_promtool(tmp_path: object) -> None:
    stack = create_observability_stack("svc")
    budget = stack.add_budget(BudgetAlert(budget_limit=1.0, key="user", on_alert=lambda s: None))
    stack.add_budget(BudgetAlert(budget_limit=2.0, key="user"))  # the same default name
    budget.add_spend(0.9, user='we"ird\nuser')
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=stack.metrics.to_prometheus_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    budgets = {
        dict(k)["budget"]
        for k in samples(stack.metrics.to_prometheus_text(), "agentos_obs_budget_limit")
    }
    assert budgets == {"user-lifetime", "user-lifetime#2"}


def test_ledger_health_while_redis_is_down(redis_server: RedisServer) -> None:
    stack = create_observability_stack("svc")
    budget = stack.add_budget(BudgetAlert(budget_limit=5.0, key="user", ledger=redis_server.url))
    budget.add_spend(1.0, user="alice")
    assert budget.flush()
    up = samples(stack.metrics.to_prometheus_text(), "agentos_obs_budget_ledger_up")
    assert up == {(("ledger", redis_server.url),): 1.0}
    redis_server.kill()
    budget.add_spend(0.25, user="alice")
    deadline = time.monotonic() + 10
    while budget.ledger_health()["up"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    text = stack.metrics.to_prometheus_text()  # a scrape never fails for an absent ledger
    assert samples(text, "agentos_obs_budget_ledger_up") == {(("ledger", redis_server.url),): 0.0}
    pending = samples(text, "agentos_obs_budget_ledger_pending_usd")
    assert pending == {(("ledger", redis_server.url),): 0.25}
    assert (
        samples(text, "agentos_obs_budget_ledger_errors_total")[(("ledger", redis_server.url),)]
        >= 1
    )
    spend = samples(text, "agentos_obs_budget_spend_usd")
    assert spend[(("budget", "user-lifetime"), ("key_value", "alice"))] == pytest.approx(1.25)
    budget.close()
