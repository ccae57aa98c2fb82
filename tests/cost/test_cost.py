"""CostAnalytics and BudgetAlert: prototype API, span-processor feeding from sealed records,
windows, raise mode."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from agentos_obs import testing
from agentos_obs.cost import BudgetAlert, BudgetStatus, CostAnalytics, budget_window
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    CostStatus,
    Span,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Tracer,
    TraceRecord,
)


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).replace(tzinfo=timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def llm_call(
    tracer: Tracer,
    cost: float,
    *,
    user: str | None = None,
    agent: str | None = None,
    model: str = "gpt-4o",
) -> None:
    """One traced LLM call, in its own trace, for ``user`` inside agent ``agent``."""
    attributes = {"user.id": user} if user is not None else None
    with tracer.start_trace("request", attributes=attributes):
        if agent is not None:
            with tracer.start_span(agent, SpanKind.AGENT):
                with tracer.start_span("llm", SpanKind.LLM):
                    tracer.record_llm_call(model, 100, 10, cost_usd=cost)
        else:
            with tracer.start_span("llm", SpanKind.LLM):
                tracer.record_llm_call(model, 100, 10, cost_usd=cost)


def record_unpriced(
    tracer: Tracer, span: Span, model: str, input_tokens: int, output_tokens: int
) -> None:
    """Usage of a model the price catalogue does not know: the call's cost is unknown."""
    tracer.record_usage(span, model=model, input_tokens=input_tokens, output_tokens=output_tokens)
    assert span.cost_usd is None, f"{model} has a price: pick a model the catalogue lacks"


# -- CostAnalytics -------------------------------------------------------------------------
def test_record_call_keeps_prototype_fields_and_summary() -> None:
    cost = CostAnalytics()
    cost.record_call(100, 20, 0.5)
    cost.record_call(50, 5, 0.25)
    assert cost.prompt_tokens == 150
    assert cost.completion_tokens == 25
    assert cost.total_tokens == 175  # the prototype left this field at 0
    assert cost.total_cost == pytest.approx(0.75)
    assert list(cost.cost_per_call) == [0.5, 0.25]
    summary = cost.summary()
    assert summary["total_cost"] == pytest.approx(0.75)
    assert summary["total_tokens"] == 175
    assert summary["avg_cost_per_call"] == pytest.approx(0.375)
    assert summary["calls"] == 2


def test_empty_summary_has_zero_average() -> None:
    summary = CostAnalytics().summary()
    assert summary["avg_cost_per_call"] == 0
    assert summary["total_cost"] == 0.0


def test_cost_per_call_is_bounded_but_average_covers_every_call() -> None:
    cost = CostAnalytics(recent_calls=5)
    for i in range(1, 21):
        cost.record_call(1, 1, float(i))
    assert list(cost.cost_per_call) == [16.0, 17.0, 18.0, 19.0, 20.0]
    assert cost.summary()["avg_cost_per_call"] == pytest.approx(10.5)  # mean of 1..20


def test_costs_given_at_construction_count_as_past_calls() -> None:
    cost = CostAnalytics(total_cost=3.0, cost_per_call=[1.0, 2.0])
    cost.record_call(1, 1, 3.0)
    assert cost.summary()["avg_cost_per_call"] == pytest.approx(2.0)
    assert cost.total_cost == pytest.approx(6.0)


def test_unpriced_calls_are_counted_apart_not_as_free() -> None:
    cost = CostAnalytics()
    cost.record_call(10, 10, 1.0, model="known")
    cost.record_call(10, 10, None, model="unknown")
    summary = cost.summary()
    assert summary["unpriced_calls"] == 1
    assert summary["priced_calls"] == 1
    assert summary["avg_cost_per_call"] == pytest.approx(1.0)  # not 0.5
    assert summary["by_model"]["unknown"]["unpriced_llm_calls"] == 1
    assert summary["by_model"]["unknown"]["cost_usd"] == 0.0


@pytest.mark.parametrize(
    "args", [(-1, 0, 0.1), (0, -1, 0.1), (1, 1, -0.5)], ids=["prompt", "completion", "cost"]
)
def test_record_call_rejects_negative_input(args: tuple[int, int, float]) -> None:
    with pytest.raises(ValueError):
        CostAnalytics().record_call(*args)


def test_bad_cost_analytics_configuration() -> None:
    with pytest.raises(ConfigurationError):
        CostAnalytics(recent_calls=-1)
    with pytest.raises(ConfigurationError):
        CostAnalytics(max_keys=0)


def test_span_processor_rolls_up_by_model_user_agent() -> None:
    tracer = Tracer()
    cost = CostAnalytics()
    tracer.add_span_processor(cost)
    llm_call(tracer, 0.01, user="alice", agent="planner", model="gpt-4o")
    llm_call(tracer, 0.02, user="alice", agent="coder", model="claude")
    llm_call(tracer, 0.04, user="bob", model="gpt-4o")
    with tracer.start_trace("q", attributes={"user.id": "bob"}):
        with tracer.start_span("chain", SpanKind.CHAIN) as chain:
            # Usage on the chain and on its child: only the innermost LLM span counts.
            tracer.record_usage(chain, model="gpt-4o", input_tokens=1, output_tokens=1, cost_usd=5)
            with tracer.start_span("llm", SpanKind.LLM) as span:
                record_unpriced(tracer, span, "mystery", 7, 3)

    summary = cost.summary()
    assert summary["calls"] == 4
    assert summary["unpriced_calls"] == 1
    assert summary["total_cost"] == pytest.approx(0.07)
    assert summary["total_tokens"] == 3 * 110 + 10
    assert summary["by_model"]["gpt-4o"]["cost_usd"] == pytest.approx(0.05)
    assert summary["by_model"]["mystery"]["unpriced_llm_calls"] == 1
    assert summary["by_user"]["alice"]["cost_usd"] == pytest.approx(0.03)
    assert summary["by_user"]["bob"]["llm_calls"] == 2
    assert summary["by_agent"]["planner"]["cost_usd"] == pytest.approx(0.01)
    assert summary["by_agent"]["coder"]["cost_usd"] == pytest.approx(0.02)
    assert summary["by_agent"]["(none)"]["llm_calls"] == 2


def test_user_from_an_ancestor_span_when_the_trace_has_none() -> None:
    tracer = Tracer()
    cost = CostAnalytics()
    tracer.add_span_processor(cost)
    with tracer.start_trace("q"):
        with tracer.start_span("root", SpanKind.CHAIN):
            with tracer.start_span("session", SpanKind.CHAIN, attributes={"user.id": "carol"}):
                with tracer.start_span("llm", SpanKind.LLM):
                    tracer.record_llm_call("m", 1, 1, cost_usd=0.1)
    assert set(cost.summary()["by_user"]) == {"carol"}


def test_cost_analytics_is_thread_safe() -> None:
    tracer = Tracer()
    cost = CostAnalytics(recent_calls=100)
    tracer.add_span_processor(cost)
    threads, per_thread = 8, 250
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            llm_call(tracer, 0.25, user=f"u{n}")

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    summary = cost.summary()
    assert summary["calls"] == threads * per_thread
    assert summary["total_cost"] == pytest.approx(0.25 * threads * per_thread)
    assert summary["prompt_tokens"] == 100 * threads * per_thread
    assert all(v["llm_calls"] == per_thread for v in summary["by_user"].values())
    assert len(cost.cost_per_call) == 100


# -- BudgetAlert: prototype ----------------------------------------------------------------
def test_check_keeps_prototype_message() -> None:
    assert BudgetAlert(budget_limit=100.0, current_spend=50.0).check() is None
    alert = BudgetAlert(budget_limit=100.0, current_spend=85.0)
    assert alert.check() == "Budget alert: 85.0% of $100.00 spent"
    assert BudgetAlert().check() is None  # limit 0: disabled, as in the prototype
    alert.current_spend = 10.0
    assert alert.check() is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_limit": -1.0},
        {"budget_limit": float("nan")},
        {"budget_limit": "ten"},
        {"budget_limit": 10.0, "threshold_pct": 0.0},
        {"budget_limit": 10.0, "threshold_pct": 100.5},
        {"budget_limit": 10.0, "threshold_pct": -5},
        {"budget_limit": 10.0, "period": "yearly"},
        {"budget_limit": 10.0, "key": "team"},
        {"budget_limit": 10.0, "mode": "block"},
        {"budget_limit": 10.0, "on_alert": "not callable"},
    ],
)
def test_bad_budget_configuration_raises(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        BudgetAlert(**kwargs)


def test_threshold_of_exactly_100_is_allowed() -> None:
    alert = BudgetAlert(budget_limit=1.0, threshold_pct=100)
    alert.add_spend(0.99)
    assert alert.check() is None
    alert.add_spend(0.01)
    assert alert.check() == "Budget alert: 100.0% of $1.00 spent"


# -- BudgetAlert: per-key windows and callbacks --------------------------------------------
def test_per_user_daily_budget_calls_back_once_per_user_and_window() -> None:
    clock = FakeClock("2024-05-01T10:00:00")
    alerts: list[BudgetStatus] = []
    budget = BudgetAlert(
        budget_limit=1.0, threshold_pct=80, period="daily", key="user",
        on_alert=alerts.append, clock=clock,
    )  # fmt: skip
    tracer = Tracer()
    tracer.add_span_processor(budget)

    llm_call(tracer, 0.5, user="alice")
    assert alerts == []
    llm_call(tracer, 0.35, user="alice")  # 85 %: crosses 80 %
    llm_call(tracer, 0.1, user="alice")  # 95 %: already alerted in this window
    llm_call(tracer, 0.5, user="bob")
    assert [(a.key_value, round(a.spend, 2)) for a in alerts] == [("alice", 0.85)]
    llm_call(tracer, 0.4, user="bob")
    assert [a.key_value for a in alerts] == ["alice", "bob"]

    first = alerts[0]
    assert first.key == "user"
    assert first.period == "daily"
    assert first.window_start == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert first.window_end == datetime(2024, 5, 2, tzinfo=timezone.utc)
    assert first.pct == pytest.approx(85.0)
    assert first.alerting and not first.exceeded
    assert "user=alice" in first.message()
    assert first.to_dict()["window_start"] == "2024-05-01T00:00:00+00:00"

    by_user = {s.key_value: s.spend for s in budget.status()}
    assert by_user == pytest.approx({"alice": 0.95, "bob": 0.9})
    assert budget.current_spend == pytest.approx(1.85)  # all users of the window
    assert "user=alice" in (budget.check() or "")  # the highest spender is named


def test_window_rolls_over_and_alerts_again_in_the_new_window() -> None:
    clock = FakeClock("2024-05-01T23:59:00")
    alerts: list[BudgetStatus] = []
    budget = BudgetAlert(
        budget_limit=1.0, period="daily", key="user", on_alert=alerts.append, clock=clock
    )
    budget.add_spend(0.9, user="alice")
    assert len(alerts) == 1

    clock.advance(120)  # 2024-05-02T00:01
    status = budget.status_for("alice")
    assert status.spend == 0.0
    assert status.window_start == datetime(2024, 5, 2, tzinfo=timezone.utc)
    assert budget.status() == []  # nobody has spent in the new window yet
    assert budget.check() is None

    budget.add_spend(0.5, user="alice")
    assert len(alerts) == 1
    budget.add_spend(0.4, user="alice")
    assert len(alerts) == 2
    assert alerts[1].window_start == datetime(2024, 5, 2, tzinfo=timezone.utc)


def test_global_budget_uses_current_spend_and_resets_each_window() -> None:
    clock = FakeClock("2024-05-01T10:15:00")
    budget = BudgetAlert(budget_limit=10.0, period="hourly", clock=clock)
    tracer = Tracer()
    tracer.add_span_processor(budget)
    llm_call(tracer, 4.0, user="a")
    llm_call(tracer, 5.0, user="b")
    assert budget.current_spend == pytest.approx(9.0)
    (status,) = budget.status()
    assert status.key is None and status.key_value is None
    assert budget.check() is not None
    clock.advance(3600)
    assert budget.check() is None
    assert budget.current_spend == 0.0


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("hourly", "2024-05-01T10:59:59", "2024-05-01T10:00:00", "2024-05-01T11:00:00"),
        ("daily", "2024-02-29T13:00:00", "2024-02-29T00:00:00", "2024-03-01T00:00:00"),
        ("weekly", "2024-05-01T10:00:00", "2024-04-29T00:00:00", "2024-05-06T00:00:00"),
        ("weekly", "2024-05-05T23:59:00", "2024-04-29T00:00:00", "2024-05-06T00:00:00"),
        ("monthly", "2024-12-31T23:30:00", "2024-12-01T00:00:00", "2025-01-01T00:00:00"),
        ("monthly", "2024-02-10T00:00:00", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),
    ],
)
def test_windows_are_utc_calendar_periods(period: str, now: str, start: str, end: str) -> None:
    budget = BudgetAlert(budget_limit=1.0, period=period, clock=FakeClock(now))
    status = budget.status_for(None)
    utc = timezone.utc
    expected = (
        datetime.fromisoformat(start).replace(tzinfo=utc),
        datetime.fromisoformat(end).replace(tzinfo=utc),
    )
    assert (status.window_start, status.window_end) == expected
    # The same windows, public for the store's budget queries.
    assert budget_window(period, FakeClock(now)()) == expected


def test_budget_window_rejects_an_unknown_period() -> None:
    with pytest.raises(ValueError, match="period"):
        budget_window("yearly", 0.0)


def test_lifetime_budget_never_rolls_over() -> None:
    clock = FakeClock("2024-05-01T00:00:00")
    budget = BudgetAlert(budget_limit=1.0, clock=clock)
    budget.add_spend(0.9)
    clock.advance(400 * 86400)
    assert budget.status_for(None).spend == pytest.approx(0.9)
    assert budget.status_for(None).window_start is None


def test_budgets_by_agent_and_model() -> None:
    tracer = Tracer()
    by_agent = BudgetAlert(budget_limit=1.0, key="agent")
    by_model = BudgetAlert(budget_limit=1.0, key="model")
    tracer.add_span_processor(by_agent)
    tracer.add_span_processor(by_model)
    llm_call(tracer, 0.3, agent="planner", model="gpt-4o")
    llm_call(tracer, 0.6, agent="coder", model="gpt-4o")
    llm_call(tracer, 0.2, model="claude")
    agents = {s.key_value: s.spend for s in by_agent.status()}
    assert agents == pytest.approx({"planner": 0.3, "coder": 0.6, "(none)": 0.2})
    models = {s.key_value: s.spend for s in by_model.status()}
    assert models == pytest.approx({"gpt-4o": 0.9, "claude": 0.2})
    assert by_model.check() == "Budget alert: 90.0% of $1.00 spent (model=gpt-4o)"


def test_unpriced_calls_add_no_spend() -> None:
    tracer = Tracer()
    budget = BudgetAlert(budget_limit=1.0)
    tracer.add_span_processor(budget)
    with tracer.start_span("llm", SpanKind.LLM) as span:
        record_unpriced(tracer, span, "mystery", 10, 10)
    assert budget.current_spend == 0.0


# -- BudgetAlert: raise mode ---------------------------------------------------------------
def test_raise_mode_stops_the_next_llm_span_of_that_user_only() -> None:
    clock = FakeClock("2024-05-01T10:00:00")
    budget = BudgetAlert(budget_limit=1.0, period="daily", key="user", mode="raise", clock=clock)
    tracer = Tracer()
    exported: list[TraceRecord] = []
    tracer.add_exporter(exported.append, sync=True)
    tracer.add_span_processor(budget)

    llm_call(tracer, 0.6, user="alice")
    llm_call(tracer, 0.6, user="alice")  # starts under budget; 120 % once it ends

    with pytest.raises(BudgetExceeded) as caught:
        llm_call(tracer, 0.1, user="alice")
    assert type(caught.value) is BudgetExceeded  # the app sees exactly this type
    assert caught.value.key == "alice"
    assert caught.value.budget is budget
    assert "alice" in str(caught.value)
    refused = exported[-1].spans[-1]
    assert refused.kind is SpanKind.LLM
    assert refused.status is SpanStatus.ERROR
    assert refused.ended

    llm_call(tracer, 0.1, user="bob")  # another user's budget is untouched
    with tracer.start_trace("q", attributes={"user.id": "alice"}):
        with tracer.start_span("retrieve", SpanKind.RETRIEVAL):
            pass  # only LLM spans are stopped

    clock.advance(86400)  # next day: a fresh window
    llm_call(tracer, 0.1, user="alice")
    assert budget.status_for("alice").spend == pytest.approx(0.1)


def test_raise_mode_global_budget_stops_standalone_record_llm_call() -> None:
    budget = BudgetAlert(budget_limit=1.0, mode="raise")
    tracer = Tracer()
    tracer.add_span_processor(budget)
    tracer.record_llm_call("m", 10, 10, cost_usd=1.0)
    with pytest.raises(BudgetExceeded):
        tracer.record_llm_call("m", 10, 10, cost_usd=0.01)


def test_raise_mode_per_model_uses_the_requested_model_at_start() -> None:
    budget = BudgetAlert(budget_limit=1.0, key="model", mode="raise")
    tracer = Tracer()
    tracer.add_span_processor(budget)
    llm_call(tracer, 1.0, model="gpt-4o")
    with pytest.raises(BudgetExceeded) as caught:
        with tracer.start_span("call", SpanKind.LLM, {"llm.request_model": "gpt-4o"}):
            pass
    assert caught.value.key == "gpt-4o"
    with tracer.start_span("call", SpanKind.LLM, {"llm.request_model": "claude"}):
        pass
    with tracer.start_span("call", SpanKind.LLM):
        pass  # model unknown at start: not held against any model's budget


def test_alert_mode_never_raises() -> None:
    budget = BudgetAlert(budget_limit=1.0, key="user")
    tracer = Tracer()
    tracer.add_span_processor(budget)
    for _ in range(3):
        llm_call(tracer, 1.0, user="alice")
    assert budget.status_for("alice").pct == pytest.approx(300.0)


# -- BudgetAlert: failures and threads -----------------------------------------------------
@pytest.mark.usefixtures("lenient")
def test_raising_callback_is_counted_and_the_app_is_unaffected() -> None:
    def broken(status: BudgetStatus) -> None:
        raise RuntimeError("pager is down")

    budget = BudgetAlert(budget_limit=1.0, key="user", on_alert=broken)
    tracer = Tracer()
    tracer.add_span_processor(budget)
    results = []
    for user in ("alice", "bob"):
        with tracer.start_trace("q", attributes={"user.id": user}):
            with tracer.start_span("llm", SpanKind.LLM):
                tracer.record_llm_call("m", 1, 1, cost_usd=0.9)
            results.append(user)  # the app carries on after the span ended
    assert results == ["alice", "bob"]
    assert testing.failure_counts()["budget_alert.on_alert"] == 2
    assert budget.status_for("bob").alerting


def test_concurrent_spend_alerts_exactly_once() -> None:
    calls: list[BudgetStatus] = []
    budget = BudgetAlert(budget_limit=100.0, threshold_pct=50, on_alert=calls.append)
    threads = 8
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(100):
            budget.add_spend(0.1)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(calls) == 1
    assert budget.current_spend == pytest.approx(80.0)


def test_add_spend_rejects_negative_cost() -> None:
    with pytest.raises(ValueError):
        BudgetAlert(budget_limit=1.0).add_spend(-0.1)


def test_reset_clears_spend_and_alert_memory() -> None:
    calls: list[BudgetStatus] = []
    budget = BudgetAlert(budget_limit=1.0, on_alert=calls.append)
    budget.add_spend(0.9)
    budget.reset()
    assert budget.current_spend == 0.0
    budget.add_spend(0.9)
    assert len(calls) == 2


def test_processors_compare_by_identity() -> None:
    # Stateful processors: two budgets with the same settings are two budgets (a list
    # membership test or a set must not merge them).
    first, second = BudgetAlert(budget_limit=5.0), BudgetAlert(budget_limit=5.0)
    assert first != second
    assert len({first, second, CostAnalytics(), CostAnalytics()}) == 4


# -- records: what on_end reads ------------------------------------------------------------
def call_record(
    *,
    cost: float | None,
    status: CostStatus,
    llm_call: bool = True,
    user: str | None = None,
    agent: str | None = None,
    model: str | None = None,
) -> SpanRecord:
    """A sealed record with no tree around it, as the store reads one back."""
    return SpanRecord(
        span_id="00000000000000a1",
        trace_id="0" * 31 + "1",
        parent_id="00000000000000ff",  # a parent nobody can walk to
        name="call",
        kind=SpanKind.LLM if llm_call else SpanKind.CHAIN,
        status=SpanStatus.OK,
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_500_000_000,
        llm_call=llm_call,
        usage=Usage(100, 20, 40) if status is not CostStatus.NO_USAGE else None,
        cost_usd=cost,
        cost_status=status if llm_call else None,
        model=model,
        user_id=user,
        agent=agent,
    )


def test_on_end_attributes_from_the_record_fields_alone() -> None:
    cost = CostAnalytics()
    by_user = BudgetAlert(budget_limit=1.0, key="user")
    by_agent = BudgetAlert(budget_limit=1.0, key="agent")
    by_model = BudgetAlert(budget_limit=1.0, key="model")
    record = call_record(
        cost=0.25, status=CostStatus.PRICED, user="alice", agent="planner", model="gpt-4o"
    )
    for processor in (cost, by_user, by_agent, by_model):
        processor.on_end(record)
    summary = cost.summary()
    assert summary["calls"] == 1
    assert summary["cache_read_tokens"] == 40
    assert set(summary["by_user"]) == {"alice"}
    assert set(summary["by_agent"]) == {"planner"}
    assert set(summary["by_model"]) == {"gpt-4o"}
    assert by_user.status_for("alice").spend == pytest.approx(0.25)
    assert by_agent.status_for("planner").spend == pytest.approx(0.25)
    assert by_model.status_for("gpt-4o").spend == pytest.approx(0.25)


def test_records_that_are_not_calls_count_nowhere() -> None:
    # e.g. a chain span carrying usage that its LLM child already counts
    record = call_record(cost=5.0, status=CostStatus.PRICED, llm_call=False, user="alice")
    cost, budget = CostAnalytics(), BudgetAlert(budget_limit=1.0)
    cost.on_end(record)
    budget.on_end(record)
    assert cost.summary()["calls"] == 0
    assert cost.total_cost == 0.0
    assert budget.current_spend == 0.0


def test_one_good_and_one_failed_call_are_two_calls() -> None:
    tracer = Tracer()
    cost = CostAnalytics()
    budget = BudgetAlert(budget_limit=1.0, key="agent")
    tracer.add_span_processor(cost)
    tracer.add_span_processor(budget)
    with tracer.start_trace("q", attributes={"user.id": "alice"}):
        with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.5)
            with pytest.raises(TimeoutError):
                with tracer.start_span("call", SpanKind.LLM, {"llm.request_model": "gpt-4o"}):
                    raise TimeoutError("provider timed out")

    summary = cost.summary()
    assert summary["calls"] == 2
    assert summary["priced_calls"] == 1
    assert summary["no_usage_calls"] == 1
    assert summary["unpriced_calls"] == 0
    assert summary["cost_complete"] is False  # the failed call's cost is unknown, not $0
    assert summary["total_cost"] == pytest.approx(0.5)
    assert summary["total_tokens"] == 110
    assert summary["avg_cost_per_call"] == pytest.approx(0.5)  # over calls with a cost
    gpt = summary["by_model"]["gpt-4o"]
    assert (gpt["llm_calls"], gpt["no_usage_llm_calls"], gpt["cost_complete"]) == (2, 1, False)
    assert summary["by_agent"]["planner"]["llm_calls"] == 2
    assert summary["by_user"]["alice"]["llm_calls"] == 2
    assert budget.status_for("planner").spend == pytest.approx(0.5)


def test_estimated_calls_are_in_the_spend_and_counted_apart() -> None:
    tracer = Tracer()
    cost = CostAnalytics()
    tracer.add_span_processor(cost)
    with tracer.start_span("call", SpanKind.LLM, {"llm.usage.estimated": True}) as span:
        tracer.record_usage(span, model="gpt-4o", input_tokens=10, output_tokens=5, cost_usd=0.2)
    with tracer.start_span("call", SpanKind.LLM) as span:
        record_unpriced(tracer, span, "mystery", 1, 1)
    summary = cost.summary()
    assert summary["calls"] == 2
    assert summary["estimated_calls"] == 1
    assert summary["unpriced_calls"] == 1
    assert summary["total_cost"] == pytest.approx(0.2)
    assert summary["cost_complete"] is False
    assert summary["by_model"]["gpt-4o"]["estimated_llm_calls"] == 1
    assert summary["by_model"]["mystery"]["unpriced_llm_calls"] == 1


def test_agent_name_attribute_names_the_agent_everywhere() -> None:
    tracer = Tracer()
    cost = CostAnalytics()
    budget = BudgetAlert(budget_limit=1.0, key="agent", mode="raise")
    tracer.add_span_processor(cost)
    tracer.add_span_processor(budget)
    with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "planner"}):
        with tracer.start_span("step", SpanKind.CHAIN):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=1.0)
    assert set(cost.summary()["by_agent"]) == {"planner"}
    assert [s.key_value for s in budget.status()] == ["planner"]
    with pytest.raises(BudgetExceeded) as caught:  # raise mode: the live-span rule agrees
        with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "planner"}):
            with tracer.start_span("call", SpanKind.LLM):
                pass
    assert caught.value.key == "planner"
    with tracer.start_span("FunctionAgent.run", SpanKind.AGENT, {"agent.name": "coder"}):
        with tracer.start_span("call", SpanKind.LLM):
            pass  # another agent's budget is untouched


def test_record_call_counts_like_a_traced_call() -> None:
    traced, by_hand = CostAnalytics(), CostAnalytics()
    tracer = Tracer()
    tracer.add_span_processor(traced)
    with tracer.start_trace("q", attributes={"user.id": "u"}):
        with tracer.start_span("a", SpanKind.AGENT):
            with tracer.start_span("call", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.5, cache_read_tokens=30)
    by_hand.record_call(100, 10, 0.5, model="gpt-4o", user="u", agent="a", cache_read_tokens=30)
    assert traced.summary() == by_hand.summary()
    assert by_hand.summary()["cost_complete"] is True


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_record_call_rejects_a_cost_that_is_not_a_finite_number(bad: float) -> None:
    cost = CostAnalytics()
    with pytest.raises(ValueError):
        cost.record_call(1, 1, bad)
    assert cost.calls == 0
