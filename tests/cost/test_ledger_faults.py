"""An unreachable ledger never breaks the app: a locked SQLite file, a Redis server killed
and started again. Fail-open by default (this process's own spend still counts), logged
once and counted; fail_closed refuses; everything buffered is added once the ledger is back,
and Redis totals a restart lost are re-added."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis_server import RedisServer, redis_fixture

import agentos_obs._internal.guard as _guard
from agentos_obs.cost import BudgetAlert, BudgetStatus
from agentos_obs.errors import BudgetExceeded
from agentos_obs.tracing import SpanKind, Tracer

redis_server = redis_fixture()


def llm_call(tracer: Tracer, cost: float, user: str = "alice") -> None:
    with tracer.start_trace("request", attributes={"user.id": user}):
        with tracer.start_span("llm", SpanKind.LLM):
            tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=cost)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def stored_spend(path: Path, user: str) -> tuple[float, int]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT spend, calls FROM budget_spend WHERE key_value = ?", (user,)
        ).fetchone()
    finally:
        conn.close()
    return (0.0, 0) if row is None else (float(row[0]), int(row[1]))


def test_a_locked_sqlite_ledger_falls_back_and_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    budget = BudgetAlert(
        budget_limit=1.0, period="daily", key="user", mode="raise",
        ledger=f"sqlite:///{path}?timeout=0.05", cache_ttl_s=0,
    )  # fmt: skip
    tracer = Tracer()
    tracer.add_span_processor(budget)
    llm_call(tracer, 0.5)
    assert budget.flush()
    assert stored_spend(path, "alice") == (0.5, 1)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        caplog.clear()
        started = time.monotonic()
        for _ in range(5):
            llm_call(tracer, 0.1)  # the app is never held up by the lock
        assert time.monotonic() - started < 1.0
        wait_for(lambda: not budget.ledger_health()["up"])
        # Fail-open, yet this process's own spend still counts: the 6th call is refused.
        with pytest.raises(BudgetExceeded):
            llm_call(tracer, 0.1)
        assert budget.status_for("alice").spend == pytest.approx(1.0)
        health = budget.ledger_health()
        assert health["pending_usd"] == pytest.approx(0.5)
        assert health["errors"] >= 1
        assert stored_spend(path, "alice") == (0.5, 1)  # nothing half-written
        time.sleep(0.3)  # the writer keeps retrying meanwhile...
        assert _guard.failure_counts()["budget_ledger.sqlite"] >= 2  # ...each failure counted
        warnings = [r for r in caplog.records if "budget_ledger.sqlite" in r.getMessage()]
        assert len(warnings) == 1  # ...and logged once
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert budget.flush(timeout_s=10)
    assert budget.ledger_health()["up"]
    spend, calls = stored_spend(path, "alice")
    assert (round(spend, 9), calls) == (1.0, 6)  # the refused call was never made
    budget.close()


def test_fail_closed_refuses_while_the_ledger_is_away(redis_server: RedisServer) -> None:
    closed = BudgetAlert(
        budget_limit=10.0, key="user", mode="raise", ledger=redis_server.url,
        fail_closed=True, cache_ttl_s=0, name="closed",
    )  # fmt: skip
    opened = BudgetAlert(
        budget_limit=10.0, key="user", mode="raise", ledger=redis_server.url,
        cache_ttl_s=0, name="open",
    )  # fmt: skip
    strict, lax = Tracer(), Tracer()
    strict.add_span_processor(closed)
    lax.add_span_processor(opened)
    llm_call(strict, 0.1)
    llm_call(lax, 0.1)
    redis_server.kill()
    with pytest.raises(BudgetExceeded, match="ledger is unreachable") as caught:
        llm_call(strict, 0.1)
    assert caught.value.budget is closed
    llm_call(lax, 0.1)  # fail-open: the call goes ahead
    redis_server.start()
    wait_for(lambda: closed.ledger_health()["up"])
    llm_call(strict, 0.1)
    assert closed.flush() and opened.flush()
    # Spend from before the loss (re-added by the client), during it (buffered) and after;
    # the refused call was never made.
    assert closed.status_for("alice").spend == pytest.approx(0.2)  # before + after
    assert opened.status_for("alice").spend == pytest.approx(0.2)  # before + during
    closed.close()
    opened.close()


def test_redis_restart_loses_nothing_this_process_spent(redis_server: RedisServer) -> None:
    alerts: list[BudgetStatus] = []
    budget = BudgetAlert(
        budget_limit=1.0, period="daily", key="user", ledger=redis_server.url,
        on_alert=alerts.append, threshold_pct=50,
    )  # fmt: skip
    tracer = Tracer()
    tracer.add_span_processor(budget)
    for _ in range(3):
        llm_call(tracer, 0.1, user="alice")
    llm_call(tracer, 0.2, user="bob")
    assert budget.flush()
    redis_server.kill()
    for _ in range(3):  # spend while Redis is down: buffered here (alice crosses 50 %)
        llm_call(tracer, 0.1, user="alice")
    wait_for(lambda: not budget.ledger_health()["up"])
    assert alerts == []  # the alert is claimed in the ledger: it waits for it
    redis_server.start()  # empty: the server had no persistence
    wait_for(lambda: budget.ledger_health()["up"])
    assert budget.flush()
    wait_for(lambda: len(alerts) == 1)
    assert alerts[0].key_value == "alice"
    client = redis_server.client()
    try:
        prefix = "agentos_obs:budget:spend:user-daily|"
        spend = {
            key.decode().rsplit("|", 1)[1]: float(client.hget(key, "spend") or 0)
            for key in client.scan_iter(match=prefix + "*")
        }
    finally:
        client.close()
    assert spend == pytest.approx({"alice": 0.6, "bob": 0.2})  # before, during, re-added
    assert budget.ledger_health()["recovered_usd"] == pytest.approx(0.5)
    assert {s.key_value: round(s.spend, 9) for s in budget.status()} == {"alice": 0.6, "bob": 0.2}
    budget.close()


def test_an_alert_callback_failing_on_the_writer_thread_is_counted(tmp_path: Path) -> None:
    def broken(status: BudgetStatus) -> None:
        raise RuntimeError("pager is down")

    budget = BudgetAlert(budget_limit=1.0, ledger=f"sqlite:///{tmp_path}/l.db", on_alert=broken)
    budget.add_spend(0.9)
    assert budget.flush()
    wait_for(lambda: _guard.failure_counts().get("budget_alert.on_alert", 0) == 1)
    budget.add_spend(0.05)  # claimed already: never called again
    assert budget.flush()
    assert budget.ledger_health()["up"]
    assert _guard.failure_counts()["budget_alert.on_alert"] == 1
    budget.close()


def test_nothing_is_logged_while_the_ledger_is_healthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentos_obs")
    budget = BudgetAlert(budget_limit=1.0, key="user", ledger=f"sqlite:///{tmp_path}/l.db")
    tracer = Tracer()
    tracer.add_span_processor(budget)
    for _ in range(20):
        llm_call(tracer, 0.01)
    assert budget.flush()
    assert caplog.records == []
    assert _guard.failure_counts() == {}
    budget.close()
