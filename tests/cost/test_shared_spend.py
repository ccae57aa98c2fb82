"""The shared spend client in one process: its own spend counts at once, others' spend is
seen within cache_ttl_s, a stream of calls never starves alerts, and fork() is safe."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agentos_obs.cost import BudgetAlert, BudgetStatus, ledger_report
from agentos_obs.cost._ledger import LedgerEntry, Tally, parse_ledger_url
from agentos_obs.cost._ledger_open import open_backend
from agentos_obs.cost._ledger_sqlite import SQLiteLedger
from agentos_obs.cost._shared_spend import SharedSpend


def two_processes_view(url: str) -> tuple[SharedSpend, SharedSpend]:
    """Two clients of one ledger, as two processes each have one."""
    spec = parse_ledger_url(url)
    return SharedSpend(spec, open_backend(spec)), SharedSpend(spec, open_backend(spec))


KEY = ("user-daily", "2025-06-01T00:00:00+00:00", "alice")


def test_own_spend_counts_at_once_and_others_within_the_cache_ttl(tmp_path: Path) -> None:
    here, there = two_processes_view(f"sqlite:///{tmp_path}/ledger.db")
    try:
        assert here.add(KEY, Tally(0.25, 1, 0), None) == Tally(0.25, 1, 0)  # before any write
        assert here.view(KEY, 10.0) == Tally(0.25, 1, 0)
        assert here.flush()
        assert there.view(KEY, 0.3) == Tally(0.25, 1, 0)  # never read: read now
        here.add(KEY, Tally(0.5, 1, 0), None)
        assert here.flush()
        read_at = time.monotonic()
        # Within cache_ttl_s the other client may answer from its cache...
        seen = there.view(KEY, 0.3)
        if time.monotonic() - read_at < 0.3:
            assert seen == Tally(0.25, 1, 0)
        time.sleep(0.35)
        # ...and no later: the staleness bound.
        assert there.view(KEY, 0.3) == Tally(0.75, 2, 0)
        assert there.view(KEY, 0.0).spend == pytest.approx(0.75)
    finally:
        here.close()
        there.close()


class SlowLedger(SQLiteLedger):
    """A real SQLite ledger whose writes take 5 ms (a busy file, a distant server)."""

    def apply(
        self, batch_id: str, entries: Sequence[LedgerEntry], *, client_id: str = ""
    ) -> list[Tally]:
        time.sleep(0.005)
        return super().apply(batch_id, entries, client_id=client_id)


def test_alert_claims_are_not_starved_by_a_stream_of_calls(tmp_path: Path) -> None:
    spec = parse_ledger_url(f"sqlite:///{tmp_path}/ledger.db")
    client = SharedSpend(spec, SlowLedger(tmp_path / "ledger.db"))
    stop = threading.Event()

    def stream(n: int) -> None:  # always something new to write: the writer is never idle
        i = 0
        while not stop.is_set():
            client.add(("b", "all", f"u{n}-{i % 50}"), Tally(1e-9, 1, 0), None)
            i += 1
            time.sleep(0.0005)

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    claimed = threading.Event()
    try:
        time.sleep(0.05)
        client.claim(("b", "all", "alice"), None, claimed.set)
        assert claimed.wait(5.0), "the claim waited for the stream to stop"
    finally:
        stop.set()
        for t in threads:
            t.join()
        client.close()


def test_alerts_fire_once_under_a_stream_of_calls(tmp_path: Path) -> None:
    alerts: list[BudgetStatus] = []
    budget = BudgetAlert(
        budget_limit=1.0, key="user", ledger=f"sqlite:///{tmp_path}/l.db", on_alert=alerts.append
    )
    stop = threading.Event()

    def stream(user: str) -> None:
        while not stop.is_set():
            budget.add_spend(1e-9, user=user)

    threads = [threading.Thread(target=stream, args=(f"u{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            budget.add_spend(0.3, user="alice")  # crosses 80 % once
        assert budget.flush()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert budget.flush()
    assert [a.key_value for a in alerts] == ["alice"]
    budget.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_budget_made_before_fork_works_in_the_child(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    budget = BudgetAlert(budget_limit=10.0, key="user", ledger=url)
    budget.add_spend(1.0, user="parent")  # may still be buffered when the child is made
    pid = os.fork()
    if pid == 0:  # the child: its own writer and connections; the parent's buffer is not its
        code = 1
        try:
            budget.add_spend(2.0, user="child")
            code = 0 if budget.flush(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert budget.flush()
    rows = ledger_report(url)["rows"]
    assert {r["key_value"]: r["spend"] for r in rows} == {"parent": 1.0, "child": 2.0}
    budget.close()
