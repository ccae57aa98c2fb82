"""The Redis ledger: spend shared by every host (redis-py; a real Redis server is the engine).

Keys (``P`` = ``agentos_obs:budget``; ``|`` cannot occur in budget names or window ids):

* ``P:spend:<budget>|<window>|<key value>`` — a hash: ``spend`` (HINCRBYFLOAT), ``calls``,
  ``tokens`` (HINCRBY), and ``c:<client>:spend``/``calls``/``tokens``, each writing
  process's own share. EXPIREAT the window's end plus an hour (a run's: a day after its
  last write); lifetime budgets never expire.
* ``P:index:<budget>|<window>`` — a sorted set of the window's key values (score: expiry),
  ``P:windows:<budget>`` — the budget's windows, ``P:names`` — every budget seen,
  ``P:meta`` — each budget's settings (JSON), for ``agentos-obs budgets``.
* ``P:alert:<budget>|<window>|<key value>`` — SET NX: the process that creates it fires the
  alert (once across all processes).
* ``P:batch:<id>`` — a batch already applied: a batch retried after a lost reply is not
  counted twice.
* ``P:epoch`` — a random id set by the first writer: a server that lost its data (a restart
  without persistence) no longer has it, and every client then re-adds its own share
  (``reconcile``), so the totals of live processes are whole again.

Each write of a batch is one Lua script (one round trip, atomic on the server): no
read-modify-write race between processes. A Redis Cluster is not supported (the script
touches keys of several slots).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agentos_obs.cost._ledger import (
    BudgetMeta,
    LedgerBackend,
    LedgerEntry,
    LedgerKey,
    LedgerRow,
    Tally,
)

__all__ = ["RedisLedger"]

_P = "agentos_obs:budget"
_BATCH_TTL_S = 86400

# KEYS: batch marker, epoch, names, then per entry: spend hash, index, windows.
# ARGV: marker ttl, now, new epoch, client field prefix, mode ("add" | "fix"),
#       then per entry: budget, window, key value, spend, calls, tokens, expire_at (0 = never).
# "fix" adds, per entry, what the ledger lacks of the client's own share (reconciliation).
_APPLY = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
end
local fix = ARGV[5] == 'fix'
local fresh = fix or redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
local now = tonumber(ARGV[2])
local me = ARGV[4]
local out = {epoch}
local added = 0
local n = (#KEYS - 3) / 3
for i = 0, n - 1 do
  local hk, ik, wk = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local a = 6 + 7 * i
  local ds, dc, dt = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local write = fresh
  if fix then
    local have = redis.call('HMGET', hk, me .. 'spend', me .. 'calls', me .. 'tokens')
    local s = tonumber(ds) - tonumber(have[1] or '0')
    local c = tonumber(dc) - tonumber(have[2] or '0')
    local t = tonumber(dt) - tonumber(have[3] or '0')
    if s < 1e-12 then s = 0 end
    if c < 0 then c = 0 end
    if t < 0 then t = 0 end
    write = s > 0 or c > 0 or t > 0
    ds, dc, dt = string.format('%.17g', s), string.format('%d', c), string.format('%d', t)
    added = added + s
  end
  if write then
    redis.call('HINCRBYFLOAT', hk, 'spend', ds)
    redis.call('HINCRBY', hk, 'calls', dc)
    redis.call('HINCRBY', hk, 'tokens', dt)
    redis.call('HINCRBYFLOAT', hk, me .. 'spend', ds)
    redis.call('HINCRBY', hk, me .. 'calls', dc)
    redis.call('HINCRBY', hk, me .. 'tokens', dt)
    local exp = tonumber(ARGV[a + 6])
    local score = '+inf'
    local ittl = redis.call('TTL', ik)
    if exp > 0 then
      score = ARGV[a + 6]
      redis.call('EXPIREAT', hk, exp)
    end
    redis.call('ZADD', ik, score, ARGV[a + 2])
    redis.call('ZADD', wk, score, ARGV[a + 1])
    if exp > 0 and (ittl == -2 or (ittl >= 0 and now + ittl < exp)) then
      redis.call('EXPIREAT', ik, exp)
    end
    redis.call('ZREMRANGEBYSCORE', ik, '-inf', '(' .. ARGV[2])
    redis.call('ZREMRANGEBYSCORE', wk, '-inf', '(' .. ARGV[2])
    redis.call('SADD', KEYS[3], ARGV[a])
  end
  local v = redis.call('HMGET', hk, 'spend', 'calls', 'tokens')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
  out[#out + 1] = v[3] or '0'
end
out[#out + 1] = string.format('%.17g', added)
return out
"""


def _spend_key(key: LedgerKey) -> str:
    return f"{_P}:spend:{key[0]}|{key[1]}|{key[2]}"


def _index_key(budget: str, window: str) -> str:
    return f"{_P}:index:{budget}|{window}"


def _windows_key(budget: str) -> str:
    return f"{_P}:windows:{budget}"


def _alert_key(key: LedgerKey) -> str:
    return f"{_P}:alert:{key[0]}|{key[1]}|{key[2]}"


def _tally(values: Sequence[Any]) -> Tally:
    spend, calls, tokens = (None if v is None else v.decode() for v in values)
    return Tally(float(spend or 0), int(calls or 0), int(tokens or 0))


def _exp(expires_at: float | None) -> str:
    return "0" if expires_at is None else str(math.ceil(expires_at))


class RedisLedger(LedgerBackend):
    """A ledger on a Redis server. Thread-safe (redis-py's connection pool).

    Timeouts default to 0.5 s (connect and each command) with no retry inside redis-py:
    the spend client, not the socket, decides what to do when Redis is away. The URL's own
    options (``?socket_timeout=2``) win.
    """

    scheme = "redis"

    def __init__(self, url: str, *, display_url: str) -> None:
        self.display_url = display_url
        self.epoch: str | None = None
        # Any: redis-py types replies as unions of every shape a command might return.
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._apply = self._client.register_script(_APPLY)

    def _run(self, mode: str, batch_id: str, entries: Sequence[LedgerEntry], client_id: str) -> Any:
        keys = [f"{_P}:batch:{batch_id}", f"{_P}:epoch", f"{_P}:names"]
        args: list[str] = [
            str(_BATCH_TTL_S),
            repr(time.time()),
            uuid.uuid4().hex,
            f"c:{client_id}:",
            mode,
        ]
        for e in entries:
            budget, window, value = e.key
            keys += [_spend_key(e.key), _index_key(budget, window), _windows_key(budget)]
            t = e.tally
            args += [budget, window, value, repr(t.spend), str(t.calls), str(t.tokens)]
            args.append(_exp(e.expires_at))
        out = self._apply(keys=keys, args=args)
        self.epoch = out[0].decode()
        totals = [_tally(out[i : i + 3]) for i in range(1, 1 + 3 * len(entries), 3)]
        return totals, float(out[-1])

    def apply(
        self, batch_id: str, entries: Sequence[LedgerEntry], *, client_id: str = ""
    ) -> list[Tally]:
        totals, _ = self._run("add", batch_id, entries, client_id)
        return list(totals)

    def reconcile(
        self, entries: Sequence[LedgerEntry], *, client_id: str
    ) -> tuple[list[Tally], float]:
        """Add what the server lacks of this client's own share of each entry (a restart
        lost it); returns the totals and the USD re-added."""
        totals, added = self._run("fix", "-", entries, client_id)
        return list(totals), added

    def read(self, keys: Sequence[LedgerKey]) -> list[Tally]:
        if len(keys) == 1:
            return [_tally(self._client.hmget(_spend_key(keys[0]), "spend", "calls", "tokens"))]
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(_spend_key(key), "spend", "calls", "tokens")
        return [_tally(values) for values in pipe.execute()]

    def rows(self, budget: str | None, window: str | None, now: float) -> list[LedgerRow]:
        names = [budget] if budget is not None else sorted(self._names())
        live = f"({now!r}"
        found: list[LedgerRow] = []
        for name in names:
            if window is not None:
                windows = [window]
            else:
                windows = [
                    w.decode() for w in self._client.zrangebyscore(_windows_key(name), live, "+inf")
                ]
            for win in windows:
                members = self._client.zrangebyscore(
                    _index_key(name, win), live, "+inf", withscores=True
                )
                if not members:
                    continue
                keys = [(name, win, m.decode()) for m, _ in members]
                for key, tally, (_, score) in zip(keys, self.read(keys), members, strict=True):
                    expires = None if math.isinf(score) else float(score)
                    found.append(LedgerRow(*key, tally, expires))
        return found

    def _names(self) -> set[str]:
        names = {n.decode() for n in self._client.smembers(f"{_P}:names")}
        return names | {n.decode() for n in self._client.hkeys(f"{_P}:meta")}

    def claim(self, key: LedgerKey, expires_at: float | None) -> bool:
        if expires_at is None:
            return bool(self._client.set(_alert_key(key), "1", nx=True))
        return bool(self._client.set(_alert_key(key), "1", nx=True, exat=math.ceil(expires_at)))

    def write_meta(self, metas: Sequence[BudgetMeta]) -> None:
        self._client.hset(f"{_P}:meta", mapping={m.name: json.dumps(m.to_dict()) for m in metas})

    def metas(self) -> list[BudgetMeta]:
        found = []
        for raw in self._client.hvals(f"{_P}:meta"):
            data = json.loads(raw)
            found.append(BudgetMeta(**{k: data.get(k) for k in BudgetMeta.__dataclass_fields__}))
        return sorted(found, key=lambda m: m.name)

    def delete(self, budget: str) -> None:
        windows = [w.decode() for w in self._client.zrange(_windows_key(budget), 0, -1)]
        doomed = [_windows_key(budget)]
        for win in windows:
            index = _index_key(budget, win)
            for member in self._client.zrange(index, 0, -1):
                doomed.append(_spend_key((budget, win, member.decode())))
                doomed.append(_alert_key((budget, win, member.decode())))
            doomed.append(index)
        for start in range(0, len(doomed), 500):
            self._client.delete(*doomed[start : start + 500])
        for alert in self._client.scan_iter(match=f"{_P}:alert:{budget}|*", count=500):
            self._client.delete(alert)

    def close(self) -> None:
        self._client.close()

    def after_fork(self) -> None:
        # redis-py's pool notices the new pid and opens new connections by itself.
        self.epoch = None
