"""Prometheus series of budgets and their ledgers, read at scrape time.

Per budget (label ``budget``, the budget's name: bounded by the budgets configured):

* ``agentos_obs_budget_spend_usd``, ``agentos_obs_budget_llm_calls``,
  ``agentos_obs_budget_tokens`` (gauges) — use in the current window per ``key_value``:
  the ``top`` key values by use (20 by default) and ``(other)`` for the rest summed, so the
  label values stay bounded however many users there are; a global budget has
  ``key_value="(all)"``; per-run limits (key "trace") have no per-run series.
* ``agentos_obs_budget_limit`` (gauge, label ``unit``: usd, llm_calls, tokens).
* ``agentos_obs_budget_exceeded_keys`` (gauge) — key values (or runs) past a limit now.
* ``agentos_obs_budget_refused_total``, ``agentos_obs_budget_flagged_total``,
  ``agentos_obs_budget_alerts_total`` — what this process refused, flagged, alerted.

Per ledger (label ``ledger``: its URL, password masked): ``agentos_obs_budget_ledger_up``
(1 reachable, 0 in fallback), ``agentos_obs_budget_ledger_pending_usd`` (spend buffered in
this process, not yet written), ``agentos_obs_budget_ledger_errors_total``.

Spend of a shared ledger is the same in every process: aggregate it with ``max``, not
``sum``; the counters are per process (sum them).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from agentos_obs._internal.guard import report
from agentos_obs.cost._budgets import BudgetAlert
from agentos_obs.cost._keys import OTHER_LABEL
from agentos_obs.metrics._registry import MetricsRegistry

__all__ = ["BudgetMetrics", "budget_metrics"]

_registries: weakref.WeakKeyDictionary[MetricsRegistry, BudgetMetrics] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def budget_metrics(registry: MetricsRegistry, *, top: int = 20) -> BudgetMetrics:
    """The budget collector of ``registry``, registered on first use."""
    with _registries_lock:
        collector = _registries.get(registry)
        if collector is None:
            collector = _registries[registry] = BudgetMetrics(top=top)
            registry.prometheus_registry.register(collector)
        return collector


def _families() -> dict[str, Metric]:
    budget, key, ledger = ["budget"], ["budget", "key_value"], ["ledger"]
    return {
        "spend": GaugeMetricFamily(
            "agentos_obs_budget_spend_usd", "USD spent in the budget's current window", labels=key
        ),
        "calls": GaugeMetricFamily(
            "agentos_obs_budget_llm_calls", "LLM calls in the budget's current window", labels=key
        ),
        "tokens": GaugeMetricFamily(
            "agentos_obs_budget_tokens", "Tokens in the budget's current window", labels=key
        ),
        "limit": GaugeMetricFamily(
            "agentos_obs_budget_limit", "Limit of each budget per unit", labels=["budget", "unit"]
        ),
        "exceeded": GaugeMetricFamily(
            "agentos_obs_budget_exceeded_keys",
            "Key values (or runs) past a limit of the budget now",
            labels=budget,
        ),
        "refused": CounterMetricFamily(
            "agentos_obs_budget_refused",
            "LLM calls this process refused (raise mode)",
            labels=budget,
        ),
        "flagged": CounterMetricFamily(
            "agentos_obs_budget_flagged",
            "Spans and traces this process flagged over a budget (alert mode)",
            labels=budget,
        ),
        "alerts": CounterMetricFamily(
            "agentos_obs_budget_alerts", "Budget alerts this process fired", labels=budget
        ),
        "up": GaugeMetricFamily(
            "agentos_obs_budget_ledger_up",
            "1 while the budget ledger answers, 0 while budgets run on the local fallback",
            labels=ledger,
        ),
        "pending": GaugeMetricFamily(
            "agentos_obs_budget_ledger_pending_usd",
            "Spend this process buffered and has not yet written to the ledger",
            labels=ledger,
        ),
        "errors": CounterMetricFamily(
            "agentos_obs_budget_ledger_errors", "Failed ledger operations", labels=ledger
        ),
    }


class BudgetMetrics:
    """A prometheus_client collector over the budgets attached to one stack."""

    def __init__(self, *, top: int = 20) -> None:
        self.top = top
        self._budgets: list[BudgetAlert] = []
        self._lock = threading.Lock()

    def add(self, budget: BudgetAlert) -> None:
        with self._lock:
            if all(b is not budget for b in self._budgets):
                self._budgets = [*self._budgets, budget]

    def describe(self) -> Iterable[Metric]:
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        families = _families()
        names: set[str] = set()
        ledgers: dict[str, dict[str, Any]] = {}
        for budget in self._budgets:
            label = str(budget.name)
            n = 2
            while label in names:  # two budgets of one name (in memory): keep series apart
                label, n = f"{budget.name}#{n}", n + 1
            names.add(label)
            try:
                self._collect_budget(budget, label, families)
                health = budget.ledger_health()
                ledgers[str(health.get("url", health["ledger"]))] = health
            except Exception as exc:
                report("budget_metrics.collect", exc)
        for url, health in sorted(ledgers.items()):
            families["up"].add_metric([url], 1.0 if health["up"] else 0.0)  # type: ignore[attr-defined]
            families["pending"].add_metric([url], float(health["pending_usd"]))  # type: ignore[attr-defined]
            families["errors"].add_metric([url], float(health["errors"]))  # type: ignore[attr-defined]
        return list(families.values())

    def _collect_budget(self, budget: BudgetAlert, label: str, families: dict[str, Any]) -> None:
        for unit, limit in (
            ("usd", budget.budget_limit or None),
            ("llm_calls", budget.max_llm_calls),
            ("tokens", budget.max_tokens),
        ):
            if limit is not None:
                families["limit"].add_metric([label, unit], float(limit))
        counts = budget.counts
        for name in ("refused", "flagged", "alerts"):
            families[name].add_metric([label], float(counts[name]))
        statuses = budget.status()
        families["exceeded"].add_metric([label], float(sum(1 for s in statuses if s.exceeded)))
        if budget.key == "trace":
            return  # one series per run would be unbounded
        statuses.sort(key=lambda s: (-s.pct, -s.spend))
        shown, rest = statuses[: self.top], statuses[self.top :]
        rows = [(s.key_value or "(all)", s.spend, s.calls, s.tokens) for s in shown]
        if rest:
            rows.append((
                OTHER_LABEL,
                sum(s.spend for s in rest),
                sum(s.calls for s in rest),
                sum(s.tokens for s in rest),
            ))  # fmt: skip
        for value, spend, calls, tokens in rows:
            families["spend"].add_metric([label, value], spend)
            families["calls"].add_metric([label, value], float(calls))
            families["tokens"].add_metric([label, value], float(tokens))
