"""The three ledger backends keep one contract: atomic increments returning the new totals,
one alert claim per key, rows per window, expiry, settings, deletion. SQLite on a real file,
Redis on a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer, redis_fixture

from agentos_obs.cost._ledger import (
    BudgetMeta,
    LedgerBackend,
    LedgerEntry,
    MemoryLedger,
    Tally,
    parse_ledger_url,
)
from agentos_obs.cost._ledger_open import open_backend

redis_server = redis_fixture()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    if request.param == "memory":
        ledger: LedgerBackend = MemoryLedger()
    elif request.param == "sqlite":
        ledger = open_backend(parse_ledger_url(f"sqlite:///{tmp_path / 'ledger.db'}"))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        ledger = open_backend(parse_ledger_url(server.url))
    yield ledger
    ledger.close()


def entry(value: str, spend: float, calls: int = 1, tokens: int = 10, **kw: object) -> LedgerEntry:
    window = str(kw.get("window", "2025-06-01T00:00:00+00:00"))
    expires = kw.get("expires_at", time.time() + 3600)
    assert expires is None or isinstance(expires, float)
    return LedgerEntry(("user-daily", window, value), Tally(spend, calls, tokens), expires)


def test_apply_adds_and_returns_the_totals(backend: LedgerBackend) -> None:
    first = backend.apply("b1", [entry("alice", 0.25), entry("bob", 0.5, calls=2)])
    assert first == [Tally(0.25, 1, 10), Tally(0.5, 2, 10)]
    second = backend.apply("b2", [entry("alice", 0.125, tokens=5)])
    assert second == [Tally(0.375, 2, 15)]
    key = ("user-daily", "2025-06-01T00:00:00+00:00", "alice")
    assert backend.read([key, ("user-daily", "2025-06-01T00:00:00+00:00", "carol")]) == [
        Tally(0.375, 2, 15),
        Tally(),
    ]


def test_concurrent_increments_all_count(backend: LedgerBackend) -> None:
    threads, per_thread = 8, 50
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            backend.apply(f"t{n}-{i}", [entry("alice", 0.01), entry(f"u{n}", 0.02)])

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    [alice] = backend.read([("user-daily", "2025-06-01T00:00:00+00:00", "alice")])
    assert alice.calls == threads * per_thread
    assert alice.spend == pytest.approx(0.01 * threads * per_thread)
    rows = backend.rows("user-daily", "2025-06-01T00:00:00+00:00", time.time())
    assert {r.key_value for r in rows} == {"alice", *(f"u{n}" for n in range(threads))}


def test_the_alert_is_claimed_once(backend: LedgerBackend) -> None:
    key = ("user-daily", "2025-06-01T00:00:00+00:00", "alice")
    won = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        won.append(backend.claim(key, time.time() + 60))

    pool = [threading.Thread(target=claim) for _ in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sorted(won) == [False] * 5 + [True]
    assert backend.claim(("user-daily", "2025-06-02T00:00:00+00:00", "alice"), None) is True


def test_rows_are_per_window_and_expired_rows_are_gone(backend: LedgerBackend) -> None:
    now = time.time()
    backend.apply(
        "b",
        [
            entry("alice", 1.0, window="2025-06-01T00:00:00+00:00"),
            entry("alice", 2.0, window="2025-06-02T00:00:00+00:00"),
            entry("old", 3.0, window="2025-05-01T00:00:00+00:00", expires_at=now - 5.0),
            entry("forever", 4.0, window="all", expires_at=None),
        ],
    )
    day1 = backend.rows("user-daily", "2025-06-01T00:00:00+00:00", now)
    assert [(r.key_value, r.tally.spend) for r in day1] == [("alice", 1.0)]
    every = {(r.window, r.key_value): r.tally.spend for r in backend.rows(None, None, now)}
    assert every == {
        ("2025-06-01T00:00:00+00:00", "alice"): 1.0,
        ("2025-06-02T00:00:00+00:00", "alice"): 2.0,
        ("all", "forever"): 4.0,
    }
    lifetime = backend.rows("user-daily", "all", now)
    assert lifetime[0].expires_at is None
    # Even asked about a time when it was live, an expired row is gone once purged (Redis
    # drops it at once: EXPIREAT in the past).
    backend.purge(now)
    earlier = {(r.window, r.key_value) for r in backend.rows(None, None, now - 3600)}
    assert ("2025-05-01T00:00:00+00:00", "old") not in earlier
    assert ("2025-06-01T00:00:00+00:00", "alice") in earlier


def test_settings_and_delete(backend: LedgerBackend) -> None:
    meta = BudgetMeta("user-daily", "user", "daily", 1.0, None, 5000, 80.0, "raise")
    backend.write_meta([meta])
    backend.write_meta([meta])  # idempotent
    assert backend.metas() == [meta]
    backend.apply("b", [entry("alice", 1.0), entry("bob", 1.0)])
    other = LedgerEntry(("per-run", "run", "abc"), Tally(0.5, 1, 1), time.time() + 60)
    backend.apply("c", [other])
    key = ("user-daily", "2025-06-01T00:00:00+00:00", "alice")
    assert backend.claim(key, None)
    backend.delete("user-daily")
    now = time.time()
    assert backend.rows("user-daily", None, now) == []
    assert backend.read([key]) == [Tally()]
    assert backend.claim(key, None) is True  # the alert memory went with the spend
    assert [r.key_value for r in backend.rows("per-run", "run", now)] == ["abc"]


# -- Redis specifics -------------------------------------------------------------------------
def test_redis_applies_a_retried_batch_once(redis_server: RedisServer) -> None:
    ledger = open_backend(parse_ledger_url(redis_server.url))
    try:
        batch = [entry("alice", 0.25)]
        assert ledger.apply("same-id", batch) == [Tally(0.25, 1, 10)]
        # The reply was lost and the client retries the very same batch: counted once.
        assert ledger.apply("same-id", batch) == [Tally(0.25, 1, 10)]
        assert ledger.apply("next-id", batch) == [Tally(0.5, 2, 20)]
    finally:
        ledger.close()


def test_redis_keys_expire_with_their_window(redis_server: RedisServer) -> None:
    ledger = open_backend(parse_ledger_url(redis_server.url))
    client = redis_server.client()
    try:
        expires = time.time() + 100
        ledger.apply("b", [entry("alice", 1.0, expires_at=expires)])
        ledger.apply("c", [entry("forever", 1.0, window="all", expires_at=None)])
        spend_key = "agentos_obs:budget:spend:user-daily|2025-06-01T00:00:00+00:00|alice"
        assert 95 <= client.ttl(spend_key) <= 101
        assert (
            95 <= client.ttl("agentos_obs:budget:index:user-daily|2025-06-01T00:00:00+00:00") <= 101
        )
        assert client.ttl("agentos_obs:budget:spend:user-daily|all|forever") == -1  # lifetime
        assert client.ttl("agentos_obs:budget:batch:b") > 3600  # retry markers also expire
    finally:
        ledger.close()
        client.close()


def test_redis_reconcile_re_adds_only_what_the_server_lost(redis_server: RedisServer) -> None:
    ledger = open_backend(parse_ledger_url(redis_server.url))
    other = open_backend(parse_ledger_url(redis_server.url))
    try:
        mine = entry("alice", 0.75, calls=3, tokens=30)
        ledger.apply("b1", [mine], client_id="me")
        other.apply("b2", [entry("alice", 0.5, calls=1, tokens=5)], client_id="them")
        # Nothing was lost: reconciling adds nothing.
        totals, added = ledger.reconcile([mine], client_id="me")  # type: ignore[attr-defined]
        assert (totals, added) == ([Tally(1.25, 4, 35)], 0.0)
        epoch = ledger.epoch  # type: ignore[attr-defined]
        redis_server.kill()
        redis_server.start()  # no persistence: every key is gone
        after = entry("alice", 0.125, calls=1, tokens=1)
        assert ledger.apply("b3", [after], client_id="me") == [Tally(0.125, 1, 1)]
        assert ledger.epoch != epoch  # type: ignore[attr-defined]  # the client can tell
        own = entry("alice", 0.875, calls=4, tokens=31)  # all it ever wrote
        totals, added = ledger.reconcile([own], client_id="me")  # type: ignore[attr-defined]
        assert totals == [Tally(0.875, 4, 31)]
        assert added == pytest.approx(0.75)
        # The other process's share comes back when that process reconciles.
        totals, _ = other.reconcile([entry("alice", 0.5, calls=1, tokens=5)], client_id="them")  # type: ignore[attr-defined]
        assert totals == [Tally(1.375, 5, 36)]
    finally:
        ledger.close()
        other.close()
