"""The shared spend client: :class:`SharedSpend` fronts a shared ledger (SQLite file, Redis);
one per process and ledger (:func:`acquire_shared`), used by every budget on that ledger:

* ``add`` (from ``on_end``, the caller's thread) only updates memory: the increment joins a
  pending buffer and a background thread writes it, woken at once, batching whatever
  accumulated meanwhile. The caller never waits for the ledger.
* ``view`` (from ``on_start`` in raise mode) answers from a cache of each key's total in
  the ledger, read again on the caller's thread when older than the budget's
  ``cache_ttl_s``; to it are added this process's increments not yet in that total
  (pending or being written), so a process always sees its own spend at once.
* Faults: a failed write keeps its batch (retried with the same id: Redis applies a batch
  once, SQLite commits all or nothing) and the ledger is marked down; while down, nothing
  on the caller's thread touches it (views use the last total plus this process's spend,
  the "local fallback"), the fault is logged once and counted (component
  ``budget_ledger.<scheme>``), and the writer retries with backoff. When a write succeeds
  again, everything buffered meanwhile is added; on Redis the client also re-adds its own
  increments the server lost (a restart without persistence), see ``_ledger_redis``.
* Alerts are claimed in the ledger (first claimer of a key and window, across processes,
  fires) by the writer thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from agentos_obs._internal.guard import count_drop, report
from agentos_obs.cost._ledger import (
    BudgetMeta,
    LedgerBackend,
    LedgerEntry,
    LedgerKey,
    LedgerRow,
    LedgerSpec,
    Tally,
)
from agentos_obs.cost._ledger_open import open_backend
from agentos_obs.cost._spend import Listener, SpendClient
from agentos_obs.errors import ConfigurationError

__all__ = ["SharedSpend", "acquire_shared", "release_shared"]

logger = logging.getLogger("agentos_obs")

_MAX_BATCH = 500  # entries per write: bounds one transaction / one script run
_MAX_KEYS = 100_000  # keys whose totals a process remembers
_RETRY_MIN_S, _RETRY_MAX_S = 0.05, 2.0
_PURGE_EVERY_S = 600.0
# Under a stream of calls the writer waits this long after a write before the next one, so
# increments arrive in batches instead of one round trip each (a bound on the write delay).
_WRITE_GAP_S = 0.002
_NEVER = float("-inf")


class _KeyState:
    """What a process knows of one key. ``total`` is the ledger's total as last read or
    written; it never includes ``inflight`` (being written) or ``pending`` (not yet)."""

    __slots__ = (
        "expires_at", "fetched", "gen", "inflight", "own", "pending", "pending_since", "total",
    )  # fmt: skip

    def __init__(self) -> None:
        self.total = Tally()
        self.pending = Tally()
        self.inflight = Tally()
        self.own = Tally()  # this client's increments the ledger acknowledged
        self.fetched = _NEVER  # monotonic time ``total`` was learnt
        self.gen = 0  # bumped when a write of this key starts or ends: reads racing it are dropped
        self.expires_at: float | None = None
        self.pending_since = 0.0  # monotonic time of the oldest pending increment

    def known(self) -> Tally:
        return self.total.plus(self.inflight, self.pending)


class SharedSpend(SpendClient):
    """One shared ledger as seen by this process (see the module docs)."""

    shared = True

    def __init__(self, spec: LedgerSpec, backend: LedgerBackend) -> None:
        self.spec = spec
        self.backend = backend
        self.scheme = backend.scheme
        self.refs = 0
        self._reset_state()

    def _reset_state(self) -> None:
        """Fresh state (construction, and in a child process after fork())."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._keys: dict[LedgerKey, _KeyState] = {}
        self._dirty: dict[LedgerKey, None] = {}  # keys with pending spend, in order
        self._retry: tuple[str, list[LedgerEntry]] | None = None
        self._retry_failed = False  # the retried batch's last attempt raised
        self._claims: list[tuple[LedgerKey, float | None, Callable[[], None]]] = []
        self._metas: dict[str, BudgetMeta] = {}  # settings to write
        self._settings: dict[str, BudgetMeta] = {}  # every subscribed budget's
        self._listeners: dict[str, weakref.WeakMethod[Listener] | Listener] = {}
        self._client_id = uuid.uuid4().hex[:16]  # this process's share in Redis hashes
        self._epoch: str | None = None
        self._reconcile = False
        self._up = True
        self._down_since: float | None = None
        self._errors = 0
        self._last_error: str | None = None
        self._recovered_usd = 0.0
        self._next_purge = 0.0
        self._max_write_delay_s = 0.0  # an increment's wait from add() to the ledger's ack
        self._max_read_s = 0.0  # a read's duration on the caller's thread
        self._batch_since = 0.0

    # -- the caller's side -----------------------------------------------------------
    def add(self, key: LedgerKey, delta: Tally, expires_at: float | None) -> Tally:
        with self._lock:
            state = self._state(key)
            if state.pending.empty:
                state.pending_since = time.monotonic()
            state.pending.add(delta)
            if expires_at is None or state.expires_at is None or expires_at > state.expires_at:
                state.expires_at = expires_at  # a run's rows live on after its last call
            self._dirty[key] = None
            known = state.known()
        if self._thread is None:
            self._start()
        if not self._wake.is_set():  # (a plain read; set() takes a lock)
            self._wake.set()
        return known

    def peek(self, key: LedgerKey) -> Tally:
        with self._lock:
            state = self._keys.get(key)
            return Tally() if state is None else state.known()

    def view(self, key: LedgerKey, max_age_s: float) -> Tally:
        now = time.monotonic()
        with self._lock:
            state = self._state(key)
            if not self._up or now - state.fetched <= max_age_s:
                return state.known()
            gen = state.gen
            # While a write of this key is out, a read may or may not include it.
            ambiguous = not state.inflight.empty and not self._retry_failed_atomically()
        try:
            total = self.backend.read([key])[0]
        except Exception as exc:
            self._fault(exc)
            return self.peek(key)
        took = time.monotonic() - now
        with self._lock:
            self._max_read_s = max(self._max_read_s, took)
            if state.gen == gen and not ambiguous:
                state.total = total
                state.fetched = now
            return state.known()

    def claim(
        self, key: LedgerKey, expires_at: float | None, on_claimed: Callable[[], None]
    ) -> None:
        with self._lock:
            self._claims.append((key, expires_at, on_claimed))
        if self._thread is None:
            self._start()
        self._wake.set()

    def rows(self, budget: str, window: str | None, now: float) -> list[LedgerRow]:
        stored: list[LedgerRow] = []
        if self._up:
            try:
                stored = self.backend.rows(budget, window, now)
            except Exception as exc:
                self._fault(exc)
        with self._lock:
            seen: dict[LedgerKey, LedgerRow] = {}
            for row in stored:
                key = (row.budget, row.window, row.key_value)
                state = self._keys.get(key)
                tally = row.tally if state is None else row.tally.plus(state.pending)
                if state is not None and not state.inflight.empty:
                    # The row may predate the write under way: take the larger of the two
                    # counts that never over-count (display only; the write settles it).
                    known = state.known()
                    if (known.spend, known.calls) > (tally.spend, tally.calls):
                        tally = known
                seen[key] = LedgerRow(*key, tally, row.expires_at)
            for key, state in self._keys.items():
                if key in seen or key[0] != budget or (window is not None and key[1] != window):
                    continue
                known = state.known()
                if not known.empty and (state.expires_at is None or state.expires_at > now):
                    seen[key] = LedgerRow(*key, known, state.expires_at)
        return list(seen.values())

    @property
    def healthy(self) -> bool:
        return self._up

    def subscribe(self, name: str, listener: Listener, meta: BudgetMeta) -> None:
        ref: weakref.WeakMethod[Listener] | Listener
        try:
            ref = weakref.WeakMethod(listener)  # type: ignore[arg-type]
        except TypeError:
            ref = listener
        with self._lock:
            current = self._listeners.get(name)
            alive = current() if isinstance(current, weakref.WeakMethod) else current
            if alive is not None and alive != listener:
                raise ConfigurationError(
                    f"two budgets named {name!r} on the ledger {self.backend.display_url}: each "
                    "would add every call to the same totals; give them distinct name= values"
                )
            self._listeners[name] = ref
            self._metas[name] = self._settings[name] = meta
        if self._thread is None:
            self._start()
        self._wake.set()

    def unsubscribe(self, name: str, listener: Listener) -> None:
        with self._lock:
            current = self._listeners.get(name)
            alive = current() if isinstance(current, weakref.WeakMethod) else current
            if alive is None or alive == listener:
                self._listeners.pop(name, None)
                self._settings.pop(name, None)

    def delete(self, budget: str) -> None:
        """Forget the budget's totals here and in the ledger (every process's)."""
        self.flush(timeout_s=2.0)
        with self._lock:
            for key in [k for k in self._keys if k[0] == budget]:
                state = self._keys.pop(key)
                self._dirty.pop(key, None)
                state.gen += 1
        try:
            self.backend.delete(budget)
        except Exception as exc:
            self._fault(exc)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything buffered is written (False if not within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._busy():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return not self._busy()
                self._wake.set()
                self._idle.wait(min(remaining, 0.05))
        return True

    def health(self) -> dict[str, Any]:
        with self._lock:
            pending = [s.pending.plus(s.inflight) for s in self._keys.values()]
            return {
                "ledger": self.scheme,
                "url": self.backend.display_url,
                "up": self._up,
                "down_since": self._down_since,
                "errors": self._errors,
                "last_error": self._last_error,
                "pending_usd": sum(t.spend for t in pending),
                "pending_keys": sum(1 for t in pending if not t.empty),
                "recovered_usd": self._recovered_usd,
                "max_write_delay_s": self._max_write_delay_s,
                "max_read_s": self._max_read_s,
            }

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self._thread = None
        self.backend.close()

    # -- internals -------------------------------------------------------------------
    def _state(self, key: LedgerKey) -> _KeyState:
        """The key's state (lock held), created on first use; the table stays bounded."""
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= _MAX_KEYS:
                self._evict()
            state = self._keys[key] = _KeyState()
        return state

    def _evict(self) -> None:
        """Forget the oldest tenth of the keys with nothing unwritten (lock held)."""
        idle = [k for k, s in self._keys.items() if s.pending.empty and s.inflight.empty]
        drop = idle[: max(1, len(self._keys) // 10)]
        for key in drop:
            del self._keys[key]
        count_drop("budget_ledger.keys", len(drop), reason=f"more than {_MAX_KEYS} keys")

    def _busy(self) -> bool:
        return bool(self._dirty or self._retry or self._claims or self._metas)

    def _retry_failed_atomically(self) -> bool:
        # A failed SQLite transaction wrote nothing: a read then excludes the batch for sure.
        return self._retry_failed and self.scheme == "sqlite"

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name=f"agentos-obs-ledger-{self.scheme}", daemon=True
            )
            self._thread = thread
        thread.start()

    def _fault(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            if self._up:
                self._up = False
                self._down_since = time.time()
        # An unreachable ledger is an operational fault, not a bug: never re-raised.
        report(f"budget_ledger.{self.scheme}", exc, reraise_in_strict=False)

    def _recovered(self) -> None:
        with self._lock:
            if self._up:
                return
            self._up = True
            since, self._down_since = self._down_since, None
            self._reconcile = True
        logger.warning(
            "agentos_obs: budget ledger %s reachable again after %.1f s; spend buffered "
            "meanwhile is being added",
            self.backend.display_url,
            time.time() - (since or time.time()),
        )

    def _run(self) -> None:
        delay = _RETRY_MIN_S
        last_write = 0.0
        while True:
            if self._up:
                self._wake.wait(1.0)
                gap = last_write + _WRITE_GAP_S - time.monotonic()
                if gap > 0:
                    self._stop.wait(gap)
            else:
                self._stop.wait(delay)  # down: retry on a backoff, not on every add
            self._wake.clear()
            last_write = time.monotonic()
            stopping = self._stop.is_set()
            try:
                ok = self._cycle()
            except Exception as exc:  # a bug here must not kill the writer
                report("budget_ledger.writer", exc, reraise_in_strict=False)
                ok = False
            delay = _RETRY_MIN_S if ok else min(delay * 2, _RETRY_MAX_S)
            with self._lock:
                self._idle.notify_all()
                if stopping and (not self._busy() or not ok):
                    return

    def _cycle(self) -> bool:
        """One round of I/O; False when the ledger failed (state kept for the retry)."""
        if not self._up and not self._probe():
            return False
        try:
            if self._reconcile:
                self._reconcile_own()
            # What was due when the cycle began, not what keeps arriving: under a steady
            # stream of calls the claims and settings below still get their turn.
            for _ in range(1 + len(self._dirty) // _MAX_BATCH):
                if not self._write_batch():
                    break
            self._write_claims()
            self._write_metas()
            now = time.time()
            if now >= self._next_purge:
                self._next_purge = now + _PURGE_EVERY_S
                self.backend.purge(now)
        except Exception as exc:
            self._fault(exc)
            return False
        return True

    def _probe(self) -> bool:
        try:
            self.backend.read([("agentos-obs", "probe", "probe")])
        except Exception as exc:
            self._fault(exc)
            return False
        self._recovered()
        return True

    def _write_batch(self) -> bool:
        """Write one batch (the one being retried first); True if there may be more."""
        with self._lock:
            if self._retry is None:
                if not self._dirty:
                    return False
                keys = list(self._dirty)[:_MAX_BATCH]
                entries = []
                self._batch_since = min(self._keys[k].pending_since for k in keys)
                for key in keys:
                    del self._dirty[key]
                    state = self._keys[key]
                    state.inflight, state.pending = state.pending, Tally()
                    state.gen += 1
                    entries.append(LedgerEntry(key, state.inflight, state.expires_at))
                self._retry = (uuid.uuid4().hex, entries)
                self._retry_failed = False
            batch_id, entries = self._retry
        try:
            totals = self.backend.apply(batch_id, entries, client_id=self._client_id)
        except Exception:
            with self._lock:
                self._retry_failed = True
                for entry in entries:
                    failed = self._keys.get(entry.key)
                    if failed is not None:
                        failed.gen += 1
            raise
        epoch = getattr(self.backend, "epoch", None)
        learnt: list[tuple[LedgerKey, Tally]] = []
        now = time.monotonic()
        with self._lock:
            self._retry = None
            self._max_write_delay_s = max(self._max_write_delay_s, now - self._batch_since)
            for entry, total in zip(entries, totals, strict=True):
                written = self._keys.get(entry.key)
                if written is None:  # deleted meanwhile
                    continue
                written.own.add(entry.tally)
                written.inflight = Tally()
                written.total = total
                written.fetched = now
                written.gen += 1
                learnt.append((entry.key, written.known()))
            if epoch is not None and self._epoch is not None and epoch != self._epoch:
                self._reconcile = True  # the server lost its data since our last write
            if epoch is not None:
                self._epoch = epoch
            more = bool(self._dirty)
        self._tell(learnt)
        return more

    def _reconcile_own(self) -> None:
        """Re-add this client's acknowledged increments a restarted server lost."""
        fix = getattr(self.backend, "reconcile", None)
        if fix is None:
            self._reconcile = False
            return
        now = time.time()
        with self._lock:
            owned = [
                LedgerEntry(k, s.own.plus(), s.expires_at)
                for k, s in self._keys.items()
                if not s.own.empty and (s.expires_at is None or s.expires_at > now)
            ]
        learnt: list[tuple[LedgerKey, Tally]] = []
        for start in range(0, len(owned), _MAX_BATCH):
            chunk = owned[start : start + _MAX_BATCH]
            totals, added = fix(chunk, client_id=self._client_id)
            with self._lock:
                self._recovered_usd += added
                for entry, total in zip(chunk, totals, strict=True):
                    state = self._keys.get(entry.key)
                    if state is not None and state.inflight.empty:
                        state.total = total
                        state.fetched = time.monotonic()
                        state.gen += 1
                        learnt.append((entry.key, state.known()))
        with self._lock:
            self._reconcile = False
            self._epoch = getattr(self.backend, "epoch", self._epoch)
            self._metas.update(self._settings)  # a server that lost data lost these too
        self._tell(learnt)

    def _write_claims(self) -> None:
        while True:
            with self._lock:
                if not self._claims:
                    return
                key, expires_at, on_claimed = self._claims[0]
            won = self.backend.claim(key, expires_at)  # raises: kept for the retry
            with self._lock:
                self._claims.pop(0)
            if won:
                try:
                    on_claimed()
                except Exception as exc:
                    report("budget_alert.on_alert", exc, reraise_in_strict=False)

    def _write_metas(self) -> None:
        with self._lock:
            metas = list(self._metas.values())
        if metas:
            self.backend.write_meta(metas)
            with self._lock:
                for meta in metas:
                    if self._metas.get(meta.name) is meta:
                        del self._metas[meta.name]

    def _tell(self, learnt: list[tuple[LedgerKey, Tally]]) -> None:
        for key, total in learnt:
            ref = self._listeners.get(key[0])
            listener = ref() if isinstance(ref, weakref.WeakMethod) else ref
            if listener is None:
                continue
            try:
                listener(key, total)
            except Exception as exc:
                report("budget_alert.listener", exc, reraise_in_strict=False)

    def _after_fork(self) -> None:
        # The parent flushes what it buffered; the child starts empty with new connections.
        self.backend.after_fork()
        listeners, settings = self._listeners, self._settings
        self._reset_state()
        self._listeners = listeners
        self._settings = settings


# -- one client per process and ledger --------------------------------------------------------
_clients: dict[str, SharedSpend] = {}
_clients_lock = threading.Lock()


def acquire_shared(spec: LedgerSpec) -> SharedSpend:
    """The process's client of the shared ledger ``spec`` (created on first use)."""
    with _clients_lock:
        client = _clients.get(spec.identity)
        if client is None:
            client = _clients[spec.identity] = SharedSpend(spec, open_backend(spec))
        client.refs += 1
        return client


def release_shared(client: SharedSpend) -> None:
    """Drop one reference; the last one flushes and closes the client."""
    with _clients_lock:
        client.refs -= 1
        if client.refs > 0:
            return
        if _clients.get(client.spec.identity) is client:
            del _clients[client.spec.identity]
    client.close()


def _flush_all_at_exit() -> None:
    with _clients_lock:
        clients = list(_clients.values())
    for client in clients:
        try:
            client.flush(timeout_s=2.0)
        except Exception as exc:
            report("budget_ledger.exit_flush", exc, reraise_in_strict=False)


def _after_fork_in_child() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()
    for client in list(_clients.values()):
        client._after_fork()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
