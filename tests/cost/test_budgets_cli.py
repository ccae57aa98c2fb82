"""``agentos-obs budgets --ledger URL``: the shared spend per budget, key and window, read
from a real SQLite ledger and a real Redis, in a child process like the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, redis_fixture

from agentos_obs.cost import BudgetAlert

redis_server = redis_fixture()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentos_obs", "budgets", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
        check=False,
    )


def fill(url: str) -> None:
    """What an app leaves in the ledger: a daily budget per user, a per-run limit, a global."""
    by_user = BudgetAlert(budget_limit=1.0, period="daily", key="user", mode="raise", ledger=url)
    runs = BudgetAlert(key="trace", max_llm_calls=5, ledger=url)
    total = BudgetAlert(budget_limit=100.0, period="monthly", ledger=url, name="org-monthly")
    for user, cost in (("alice", 1.25), ("bob", 0.5), ("carol", 0.85)):
        by_user.add_spend(cost, user=user)
        total.add_spend(cost)
    runs.add_spend(0.02, trace="0af7651916cd43dd8448eb211c80319c")
    for budget in (by_user, runs, total):
        assert budget.flush()
        budget.close()


def check_report(report: dict[str, Any]) -> None:
    rows = {(r["name"], r["key_value"]): r for r in report["rows"]}
    alice = rows[("user-daily", "alice")]
    assert alice["spend"] == 1.25 and alice["exceeded"] and alice["limit"] == 1.0
    assert alice["window_start"].endswith("T00:00:00+00:00") and alice["period"] == "daily"
    assert (
        rows[("user-daily", "carol")]["alerting"] and not rows[("user-daily", "carol")]["exceeded"]
    )
    assert rows[("org-monthly", None)]["spend"] == pytest.approx(2.6)
    assert rows[("per-run", "0af7651916cd43dd8448eb211c80319c")]["max_llm_calls"] == 5
    # highest use first within a budget
    users = [r["key_value"] for r in report["rows"] if r["name"] == "user-daily"]
    assert users == ["alice", "carol", "bob"]
    budgets = {b["name"]: b for b in report["budgets"]}
    assert budgets["user-daily"]["mode"] == "raise" and budgets["user-daily"]["exceeded_keys"] == 1
    assert budgets["user-daily"]["spend"] == pytest.approx(2.6)


def test_budgets_from_a_sqlite_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    fill(url)
    result = run_cli("--ledger", url, "--format", "json")
    assert result.returncode == 0, result.stderr
    check_report(json.loads(result.stdout))

    table = run_cli("--ledger", url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    alice = next(line for line in lines if "user=alice" in line)
    assert "$1.25" in alice and "$1.00" in alice and "125%" in alice and "exceeded" in alice
    assert any("(all)" in line and "$2.60" in line for line in lines)

    only = json.loads(run_cli("--ledger", url, "--budget", "per-run", "--format", "json").stdout)
    assert {r["name"] for r in only["rows"]} == {"per-run"}
    top = json.loads(run_cli("--ledger", url, "--top", "1", "--format", "json").stdout)
    assert [r["key_value"] for r in top["rows"] if r["name"] == "user-daily"] == ["alice"]
    via_env = run_cli("--format", "json", env={"AGENTOS_OBS_BUDGET_LEDGER": url})
    assert json.loads(via_env.stdout)["rows"] == json.loads(result.stdout)["rows"]


def test_budgets_from_redis(redis_server: RedisServer) -> None:
    fill(redis_server.url)
    result = run_cli("--ledger", redis_server.url, "--format", "json")
    assert result.returncode == 0, result.stderr
    check_report(json.loads(result.stdout))
    redis_server.kill()
    down = run_cli("--ledger", redis_server.url)
    assert down.returncode == 1 and "cannot read the budget ledger" in down.stderr
    assert "Traceback" not in down.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ((), 2, "budgets needs --ledger URL"),
        (("--ledger", "memory"), 1, "lives inside one process"),
        (("--ledger", "ftp://x"), 2, "must be 'memory'"),
        (("--ledger", "redis://:pw@h:xx/0"), 2, "redis://:***@h:xx/0"),
        (("--ledger", "sqlite:////nonexistent/dir/ledger.db"), 1, "no budget ledger at"),
        (("--top", "0", "--ledger", "sqlite:///x.db"), 2, "must be 1 to 10,000"),
    ],
)
def test_bad_invocations_say_why(args: tuple[str, ...], code: int, words: str) -> None:
    result = run_cli(*args, env={"AGENTOS_OBS_BUDGET_LEDGER": ""})
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in result.stderr and "Traceback" not in result.stderr
    assert "pw@" not in result.stderr


def test_an_empty_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    BudgetAlert(budget_limit=1.0, key="user", ledger=url).close()  # settings, no spend
    result = run_cli("--ledger", url)
    assert result.returncode == 0 and "No budget spend" in result.stdout
    report = json.loads(run_cli("--ledger", url, "--format", "json").stdout)
    assert report["rows"] == [] and [b["name"] for b in report["budgets"]] == ["user-lifetime"]
