"""Budgets across real processes: 4 app processes on one SQLite ledger, 2 "hosts" on one
Redis, a $1.00 daily budget per user under concurrent LangChain runs, restarts, and a Redis
server killed and started again mid-run.

The overshoot bound checked is the one docs/budgets.md states: past the limit, at most
``cost_per_call × slots × (1 + ceil(S / d))``, where ``slots`` is the number of callers
that may run a call for one user at once (every thread of every process), ``d`` the
shortest call, and ``S`` the staleness (``cache_ttl_s`` plus the longest write and read
delay the workers measured).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, redis_fixture

redis_server = redis_fixture()

WORKER = Path(__file__).with_name("budget_worker.py")
# gpt-4o-mini in lc_fakes.PRICES: $1/M input, $2/M output -> 8000 + 1000 tokens = $0.01.
CALL = {"input_tokens": 8000, "output_tokens": 1000}
COST_PER_CALL = 0.01
USERS = ["alice", "bob"]


class Workers:
    """Worker processes started together: each says ``ready``, all get ``go`` at once."""

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(cfg)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for cfg in configs
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                proc.kill()
                raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def results(self, timeout_s: float = 120) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            stdout, stderr = proc.communicate(timeout=timeout_s)
            assert proc.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out


def config(worker: int, ledger: str, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "worker": worker,
        "ledger": ledger,
        "limit": 1.0,
        "users": USERS,
        "threads": 4,
        "runs": 40,
        "delay_s": 0.02,
        "cache_ttl_s": 0.0,
        **CALL,
    }
    cfg.update(overrides)
    return cfg


def total(results: list[dict[str, Any]], field: str) -> Counter[str]:
    summed: Counter[str] = Counter()
    for result in results:
        for user, value in result[field].items():
            summed[user] += value
    return summed


def overshoot_bound(results: list[dict[str, Any]], cache_ttl_s: float, delay_s: float) -> float:
    slots = sum(r["threads"] for r in results)
    stale = cache_ttl_s + max(
        r["health"]["max_write_delay_s"] + r["health"]["max_read_s"] for r in results
    )
    return COST_PER_CALL * slots * (1 + math.ceil(stale / delay_s))


def sqlite_ledger(path: Path) -> dict[str, tuple[float, int]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT key_value, spend, calls FROM budget_spend").fetchall()
    finally:
        conn.close()
    return {user: (spend, calls) for user, spend, calls in rows}


def check_enforced(
    results: list[dict[str, Any]], ledger: dict[str, tuple[float, int]], cfgs: list[dict[str, Any]]
) -> None:
    for result, cfg in zip(results, cfgs, strict=True):
        assert result["errors"] == [] and result["flushed"]
        result["threads"] = cfg["threads"]
    spent, calls, runs = total(results, "spent"), total(results, "calls"), total(results, "runs")
    bound = overshoot_bound(results, cfgs[0]["cache_ttl_s"], cfgs[0]["delay_s"])
    for user in USERS:
        ledger_spend, ledger_calls = ledger[user]
        # Every process's calls are in the ledger, once: it adds up to what the apps spent.
        assert ledger_spend == pytest.approx(spent[user], abs=1e-9)
        assert ledger_calls == calls[user] == runs[user]  # one LLM call per run
        # Enforced: the budget was reached, and passed by no more than the bound.
        assert 1.0 - 1e-9 <= ledger_spend <= 1.0 + bound, (user, ledger_spend, bound)
        assert total(results, "refused")[user] > 0
        # The 80 % alert fired once for all processes.
        assert sum(r["alerts"].count(user) for r in results) == 1
    stale = max(r["health"]["max_write_delay_s"] + r["health"]["max_read_s"] for r in results)
    print(
        f"\novershoot: {[round(ledger[u][0] - 1.0, 4) for u in USERS]} USD, bound {bound:.2f} "
        f"USD ({sum(c['threads'] for c in cfgs)} slots, write+read delay {stale * 1e3:.1f} ms)"
    )


def test_four_processes_share_one_sqlite_ledger_and_a_restart_keeps_the_day(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    cfgs = [config(w, url) for w in range(4)]
    workers = Workers(cfgs)
    workers.go()
    results = workers.results()
    check_enforced(results, sqlite_ledger(path), cfgs)

    # A restart (a new process, as after a deploy): the day's spend is still there.
    again = Workers([config(9, url, threads=1, runs=2)])
    again.go()
    [after] = again.results()
    assert after["errors"] == []
    assert after["runs"] == {} and after["refused"] == {"alice": 1, "bob": 1}
    assert after["status"] == pytest.approx({u: sqlite_ledger(path)[u][0] for u in USERS})


def test_two_hosts_share_one_redis_ledger(redis_server: RedisServer) -> None:
    cfgs = [config(w, redis_server.url, threads=4, cache_ttl_s=0.05) for w in range(2)]
    workers = Workers(cfgs)
    workers.go()
    results = workers.results()
    ledger = {}
    client = redis_server.client()
    try:
        for user in USERS:
            key = f"agentos_obs:budget:spend:user-daily|{_today()}|{user}"
            ledger[user] = (
                float(client.hget(key, "spend") or 0),
                int(client.hget(key, "calls") or 0),
            )
    finally:
        client.close()
    check_enforced(results, ledger, cfgs)
    again = Workers([config(9, redis_server.url, threads=1, runs=2)])
    again.go()
    [after] = again.results()
    assert after["runs"] == {} and after["refused"] == {"alice": 1, "bob": 1}


def test_redis_killed_and_restarted_mid_run_is_survived_and_reconciled(
    redis_server: RedisServer,
) -> None:
    cfgs = [
        config(w, redis_server.url, limit=1000.0, runs=10**6, duration_s=3.0, threads=3)
        for w in range(2)
    ]
    workers = Workers(cfgs)
    workers.go()
    time.sleep(0.8)
    redis_server.kill()  # SIGKILL, no persistence: every total is lost
    time.sleep(0.8)
    redis_server.start()
    results = workers.results()
    for result in results:
        assert result["errors"] == []  # the app never noticed
        assert result["refused"] == {}  # fail-open: nothing refused meanwhile
        assert result["flushed"]
        health = result["health"]
        assert health["up"] and health["errors"] >= 1 and health["recovered_usd"] > 0
    spent = total(results, "spent")
    client = redis_server.client()
    try:
        for user in USERS:
            key = f"agentos_obs:budget:spend:user-daily|{_today()}|{user}"
            # Before the kill (re-added by each process), during it (buffered) and after.
            assert float(client.hget(key, "spend") or 0) == pytest.approx(spent[user], abs=1e-9)
            assert int(client.hget(key, "calls") or 0) == total(results, "calls")[user]
    finally:
        client.close()


def _today() -> str:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
