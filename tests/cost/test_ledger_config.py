"""Choosing a ledger: URLs checked at set-up with clear errors, one client per process and
ledger, configure(budget_ledger=...) wiring, names that must not collide."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentos_obs as obs
from agentos_obs.cost import BudgetAlert, parse_ledger_url
from agentos_obs.errors import ConfigurationError
from agentos_obs.stack import configure, get_stack, reset_stack


@pytest.fixture
def fresh_stack() -> Iterator[None]:
    reset_stack()
    yield
    reset_stack()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must be 'memory'"),
        (None, "must be 'memory'"),
        ("postgres://db/x", "must be 'memory'"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///", "names no file"),
        ("sqlite:///x.db?mode=ro", "unknown option 'mode'"),
        ("sqlite:///x.db?timeout=soon", "timeout must be seconds"),
        ("sqlite:///x.db?timeout=-1", "timeout must be in"),
        ("redis://", "names no host"),
        ("redis://localhost:abc/0", "bad Redis ledger URL"),
        ("redis://localhost:99999/0", "bad Redis ledger URL"),
        ("redis://localhost:6379/zero", "is a number"),
        ("redis://:secret@localhost:6379/zero", "redis://:***@localhost"),
    ],
)
def test_bad_urls_fail_at_set_up(url: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        parse_ledger_url(url)
    assert "secret" not in str(caught.value)
    if url is not None:  # None is BudgetAlert's default: in memory, unless the stack says
        with pytest.raises(ConfigurationError):
            BudgetAlert(budget_limit=1.0, ledger=url)  # type: ignore[arg-type]


def test_sqlite_paths_that_cannot_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        parse_ledger_url(f"sqlite:///{tmp_path}")
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigurationError, match="not writable"):
        parse_ledger_url(f"sqlite:///{tmp_path}/afile/sub/ledger.db")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: every directory is writable")
        with pytest.raises(ConfigurationError, match="not writable"):
            parse_ledger_url(f"sqlite:///{locked}/sub/ledger.db")
    finally:
        locked.chmod(0o700)


def test_urls_name_one_ledger_whatever_the_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = parse_ledger_url("sqlite:///ledger.db")
    absolute = parse_ledger_url(f"sqlite:///{tmp_path}/ledger.db")  # four slashes
    assert relative.identity == absolute.identity == f"sqlite:{tmp_path}/ledger.db"
    assert parse_ledger_url("redis://localhost/2").identity == "redis://localhost:6379/2"
    assert parse_ledger_url("redis://localhost:6379?db=2").identity == "redis://localhost:6379/2"
    assert not parse_ledger_url("memory").shared


def test_budgets_on_one_ledger_share_one_client_and_need_distinct_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    by_user = BudgetAlert(budget_limit=1.0, period="daily", key="user", ledger=url)
    by_model = BudgetAlert(budget_limit=1.0, period="daily", key="model", ledger=url)
    assert by_user.name == "user-daily" and by_model.name == "model-daily"
    # One client per process and ledger: it knows every budget's name on that ledger.
    with pytest.raises(ConfigurationError, match="two budgets named 'user-daily'"):
        BudgetAlert(budget_limit=5.0, period="daily", key="user", ledger=url)
    again = BudgetAlert(
        budget_limit=5.0, period="daily", key="user", ledger=url, name="user-daily-5"
    )
    assert again.name == "user-daily-5"
    for budget in (by_user, by_model, again):
        budget.close()
    # Once closed, the name is free again (a budget rebuilt on re-configuration).
    BudgetAlert(budget_limit=1.0, period="daily", key="user", ledger=url).close()


def test_bad_budget_settings_of_the_ledger_era() -> None:
    for kwargs in (
        {"max_llm_calls": 0},
        {"max_llm_calls": 2.5},
        {"max_tokens": True},
        {"key": "trace", "period": "daily", "max_llm_calls": 3},
        {"budget_limit": 1.0, "cache_ttl_s": -1},
        {"budget_limit": 1.0, "cache_ttl_s": float("nan")},
        {"budget_limit": 1.0, "name": "has space"},
        {"budget_limit": 1.0, "name": "a|b"},
        {"budget_limit": 1.0, "fail_closed": "yes"},
        {"budget_limit": float("inf")},
    ):
        with pytest.raises(ConfigurationError):
            BudgetAlert(**kwargs)  # type: ignore[arg-type]


def test_a_shared_ledger_refuses_seeded_spend(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="seeds an in-process budget"):
        BudgetAlert(budget_limit=1.0, current_spend=0.5, ledger=f"sqlite:///{tmp_path}/l.db")


def test_the_ledger_url_is_never_printed_with_its_password() -> None:
    budget = BudgetAlert(budget_limit=1.0, ledger="redis://:hunter2@127.0.0.1:1/0")
    try:
        assert "hunter2" not in repr(budget)
        assert budget.ledger_url == "redis://:***@127.0.0.1:1/0"
    finally:
        budget.close()


@pytest.mark.usefixtures("fresh_stack")
def test_configure_moves_the_budgets_to_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    early = BudgetAlert(budget_limit=1.0, key="user", name="early")
    own = BudgetAlert(budget_limit=1.0, key="agent", name="own", ledger="memory")
    get_stack().add_budget(early)
    get_stack().add_budget(own)
    given = BudgetAlert(budget_limit=2.0, key="model", name="given")
    stack = configure(budgets=[given], budget_ledger=url)
    assert stack.budgets == [early, own, given]
    assert early.ledger_url == given.ledger_url == f"sqlite:///{tmp_path}/ledger.db"
    assert own.ledger_url == "memory"  # built with its own ledger=
    late = stack.add_budget(BudgetAlert(budget_limit=3.0, name="late"))
    assert late.ledger_url == f"sqlite:///{tmp_path}/ledger.db"
    given.add_spend(0.5, model="gpt-4o")
    assert given.flush()
    assert given.status_for("gpt-4o").spend == pytest.approx(0.5)
    # A second configure() may move them again (they were put there by the stack).
    configure(budget_ledger="memory")
    assert early.ledger_url == given.ledger_url == late.ledger_url == "memory"


@pytest.mark.usefixtures("fresh_stack")
@pytest.mark.parametrize("problem", ["bad url", "two budgets of one name"])
def test_configure_with_a_bad_ledger_changes_nothing(problem: str, tmp_path: Path) -> None:
    attached = BudgetAlert(budget_limit=1.0, key="user", period="daily")
    get_stack().add_budget(attached)
    twin = BudgetAlert(budget_limit=9.0, key="user", period="daily")  # also "user-daily"
    if problem == "bad url":
        url, message = "mysql://x", "must be 'memory'"
    else:
        url, message = f"sqlite:///{tmp_path}/ledger.db", "two budgets named 'user-daily'"
    with pytest.raises(ConfigurationError, match=message):
        obs.configure(service_name="changed", budgets=[twin], budget_ledger=url)
    stack = get_stack()
    assert stack.budgets == [attached]
    assert stack.tracer.config.service_name != "changed"
    assert stack.budget_ledger is None
    assert attached.ledger_url == "memory"
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("first", ["store", "ledger"])
def test_the_ledger_may_live_in_the_span_stores_file(tmp_path: Path, first: str) -> None:
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import SpanKind, Tracer

    path = tmp_path / "agentos.db"
    store = budget = None
    try:
        for which in (first, "ledger" if first == "store" else "store"):
            if which == "store":
                store = SQLiteStore(path)
            else:
                budget = BudgetAlert(budget_limit=1.0, key="user", ledger=f"sqlite:///{path}")
        assert store is not None and budget is not None
        tracer = Tracer()
        tracer.add_exporter(store)
        tracer.add_span_processor(budget)
        with tracer.start_trace("q", attributes={"user.id": "alice"}):
            with tracer.start_span("llm", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 100, 10, cost_usd=0.25)
        assert store.flush() and budget.flush()
        assert store.count_traces() == 1
        assert budget.status_for("alice").spend == pytest.approx(0.25)
    finally:
        if store is not None:
            store.close()
        if budget is not None:
            budget.close()
    reopened = SQLiteStore(path)  # the store's migrations accept the ledger's tables
    try:
        assert reopened.count_traces() == 1
    finally:
        reopened.close()
