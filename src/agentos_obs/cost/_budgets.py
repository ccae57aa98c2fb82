"""Budgets: spend per UTC calendar window and per key (user, agent, model, run) that alert
once or refuse the next LLM call, held in a ledger shared by processes and hosts.

:class:`BudgetAlert` is a span processor. ``on_end`` reads only the sealed
:class:`~agentos_obs.tracing.SpanRecord` of each finished span: a counted call
(``record.llm_call``) adds one call, its tokens and its cost (when known) to
``record.user_id``, ``record.agent``, ``record.model`` or ``record.trace_id``. ``on_start``
sees the live span, before any record exists, and asks the tracing attribution rule of its
key once per LLM span.

Where the spend lives is the ``ledger`` (:mod:`agentos_obs.cost._ledger`): this process's
memory (the default), a SQLite file (every process of a host) or Redis (every host). See
:mod:`agentos_obs.cost._shared_spend` for what the caller's thread pays and how faults are met.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs._internal.guard import report
from agentos_obs.cost._budget_status import (
    BUDGET_EXCEEDED,
    BUDGET_EXCEEDED_REASON,
    BUDGET_KEYS,
    BUDGET_MODES,
    BUDGET_PERIODS,
    BudgetStatus,
    budget_window,
)
from agentos_obs.cost._ledger import (
    RUN_TTL_S,
    WINDOW_GRACE_S,
    BudgetMeta,
    LedgerKey,
    LedgerSpec,
    Tally,
    mask_url,
    parse_ledger_url,
)
from agentos_obs.cost._shared_spend import acquire_shared, release_shared
from agentos_obs.cost._spend import LocalSpend, SpendClient
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.tracing import (
    NONE_LABEL,
    Span,
    SpanKind,
    SpanRecord,
    Trace,
    agent_of,
    model_of,
    user_of,
)

__all__ = ["BudgetAlert", "check_ledger_move"]

# The record field each budget key reads (None: one global budget).
_RECORD_FIELD = {"user": "user_id", "agent": "agent", "model": "model", "trace": "trace_id"}
_GLOBAL = "*"  # key value of a global budget in the ledger
_NAME = re.compile(r"[A-Za-z0-9_.:/@-]{1,120}")
_MEMORY_RUN_TTL_S = 3600.0  # in-process run totals: an hour after their last call
_MAX_MEMO = 10_000  # alert claims and live traces remembered
_PURGE_EVERY_S = 60.0
_REFUSED = BudgetExceeded.__name__
_ALMOST = 1 - 1e-9  # ten calls of $0.10 sum to 0.9999999999999999: that is $1.00 spent


@dataclass(frozen=True)
class _Window:
    id: str  # the ledger's window id
    start: datetime | None
    end: datetime | None
    end_ts: float


_LIFETIME = _Window("all", None, None, float("inf"))
_RUN = _Window("run", None, None, float("inf"))


@dataclass(eq=False)  # identity: two budgets with equal settings are still two budgets
class BudgetAlert:
    """A spend budget; a span processor that adds every finished LLM call to its ledger.

    - ``period``: None (lifetime) or "hourly" / "daily" / "weekly" / "monthly" UTC windows;
      spend starts again from 0 in each new window (windows only move forward).
    - ``key``: None (one global budget) or "user" / "agent" / "model": each value of the
      key has its own budget (spend with no value is tracked as "(none)"); or "trace": a
      per-run limit (no period), each run (trace) has its own.
    - Limits: ``budget_limit`` (USD; 0: none), ``max_llm_calls``, ``max_tokens`` (None:
      none); the budget is exceeded once any is reached. With no limit at all the budget
      is disabled (the prototype's default).
    - ``on_alert(status)``: called once per (window, key value) when use reaches
      ``threshold_pct`` % of a limit, once across every process sharing the ledger. A
      callback that raises is reported, never re-raised. On a shared ledger it runs on the
      ledger's writer thread, right after the write.
    - ``mode="raise"``: once a key is exceeded, the next LLM span started for it raises
      :class:`BudgetExceeded` in the app (from ``on_start``); the refused span and its
      trace carry ``budget.exceeded`` (the budget's name). ``mode="alert"`` never raises;
      LLM spans started over the limit, and the trace of the call that crossed it, are
      flagged the same way.
    - ``ledger``: "memory" (default), "sqlite:///PATH" or "redis://HOST:PORT/DB". On a shared
      ledger the check in raise mode reads the ledger when its cached total of the key is
      older than ``cache_ttl_s`` (0: on every call); this process's own spend is always
      counted at once. ``name`` (default from key and period, e.g. "user-daily") names the
      totals in the ledger: processes sharing a budget give it the same name.
    - ``fail_closed=True``: while the ledger is unreachable, raise mode refuses every LLM
      call; by default (fail-open) the check uses the last total read plus this process's
      spend since.

    Only calls with a known cost add spend: an unpriced call or one without reported usage
    adds nothing (its cost is unknown, not $0), though it counts as a call. ``current_spend``
    is the spend of the current window: of the global budget (in memory), else the spend
    this process added in the window (summed over key values); :meth:`status` and
    :meth:`check` look at each key value in the ledger.
    """

    budget_limit: float = 0.0
    current_spend: float = 0.0
    threshold_pct: float = 80.0
    period: str | None = field(default=None, kw_only=True)
    key: str | None = field(default=None, kw_only=True)
    on_alert: Callable[[BudgetStatus], Any] | None = field(default=None, kw_only=True)
    mode: str = field(default="alert", kw_only=True)
    clock: Callable[[], float] = field(default=time.time, kw_only=True, repr=False)
    name: str | None = field(default=None, kw_only=True)
    max_llm_calls: int | None = field(default=None, kw_only=True)
    max_tokens: int | None = field(default=None, kw_only=True)
    ledger: str | None = field(default=None, kw_only=True, repr=False)  # may hold a password
    cache_ttl_s: float = field(default=0.5, kw_only=True)
    fail_closed: bool = field(default=False, kw_only=True)

    _spec: LedgerSpec = field(init=False, repr=False)
    _client: SpendClient | None = field(default=None, init=False, repr=False)
    _ledger_from_stack: bool = field(default=False, init=False, repr=False)
    _active: bool = field(default=False, init=False, repr=False)
    _record_field: str | None = field(default=None, init=False, repr=False)
    _window: _Window = field(default=_LIFETIME, init=False, repr=False)
    _alerted: set[LedgerKey] = field(default_factory=set, init=False, repr=False)
    _live: dict[str, Trace] = field(default_factory=dict, init=False, repr=False)
    _next_purge: float = field(default=0.0, init=False, repr=False)
    _counts: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._validate()
        self._record_field = None if self.key is None else _RECORD_FIELD[self.key]
        self._counts = {"refused": 0, "flagged": 0, "alerts": 0}
        if self.key == "trace":
            self._window = _RUN
        elif self.period is not None:
            self._enter_window(self.clock())
        self._spec = parse_ledger_url("memory" if self.ledger is None else self.ledger)
        if self._spec.shared and self.current_spend:
            raise ConfigurationError(
                "current_spend= seeds an in-process budget; a shared ledger keeps its own spend"
            )
        self._attach()

    def _validate(self) -> None:
        try:
            limit = float(self.budget_limit)
            threshold = float(self.threshold_pct)
            ttl = float(self.cache_ttl_s)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                "budget_limit, threshold_pct and cache_ttl_s must be numbers"
            ) from exc
        if not limit >= 0 or limit == float("inf"):  # also rejects NaN
            raise ConfigurationError(f"budget_limit must be >= 0, got {self.budget_limit!r}")
        if not 0 < threshold <= 100:
            raise ConfigurationError(
                f"threshold_pct must be in (0, 100], got {self.threshold_pct!r}"
            )
        if not 0 <= ttl <= 3600:
            raise ConfigurationError(f"cache_ttl_s must be in [0, 3600], got {self.cache_ttl_s!r}")
        for name in ("max_llm_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigurationError(f"{name} must be a positive int or None, got {value!r}")
        if self.period not in BUDGET_PERIODS:
            raise ConfigurationError(f"period must be one of {BUDGET_PERIODS}, got {self.period!r}")
        if self.key not in BUDGET_KEYS:
            raise ConfigurationError(f"key must be one of {BUDGET_KEYS}, got {self.key!r}")
        if self.key == "trace" and self.period is not None:
            raise ConfigurationError(
                "a per-run limit (key='trace') has no period: the run is its window"
            )
        if self.mode not in BUDGET_MODES:
            raise ConfigurationError(f"mode must be one of {BUDGET_MODES}, got {self.mode!r}")
        if self.on_alert is not None and not callable(self.on_alert):
            raise ConfigurationError("on_alert must be callable as on_alert(status)")
        if not callable(self.clock):
            raise ConfigurationError("clock must be callable, returning epoch seconds")
        if not isinstance(self.fail_closed, bool):
            raise ConfigurationError(f"fail_closed must be a bool, got {self.fail_closed!r}")
        if self.name is None:
            self.name = (
                "per-run"
                if self.key == "trace"
                else (f"{self.key or 'global'}-{self.period or 'lifetime'}")
            )
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"name must be 1-120 of A-Z a-z 0-9 _ . : / @ -, got {self.name!r}"
            )
        self.budget_limit, self.threshold_pct, self.cache_ttl_s = limit, threshold, ttl
        self._active = limit > 0 or self.max_llm_calls is not None or self.max_tokens is not None

    # -- the ledger ------------------------------------------------------------------
    @property
    def ledger_url(self) -> str:
        """The ledger's URL with any password masked ("memory" by default)."""
        client = self._client
        return client.health().get("url", client.scheme) if client is not None else "memory"

    def use_ledger(self, url: str, *, from_stack: bool = False) -> None:
        """Move this budget to another ledger (``configure(budget_ledger=...)`` calls this
        for budgets built without ``ledger=``). Spend held by the old one stays there."""
        spec = parse_ledger_url(url)
        if spec.identity == self._spec.identity:
            return
        if spec.shared and self.current_spend and not self._spec.shared:
            self.current_spend = 0.0  # the new ledger keeps its own spend
        old_client, old_spec = self._client, self._spec
        self._spec, self._client = spec, None
        try:
            self._attach()
        except BaseException:
            self._spec, self._client = old_spec, old_client
            raise
        self.ledger = url
        self._ledger_from_stack = from_stack
        with self._lock:
            self._alerted.clear()
        self._detach(old_client)

    @property
    def ledger_set_by_stack(self) -> bool:
        """True unless the ledger was chosen for this budget (``ledger=`` or use_ledger)."""
        return self.ledger is None or self._ledger_from_stack

    def _meta(self) -> BudgetMeta:
        assert self.name is not None
        return BudgetMeta(
            self.name, self.key, self.period, self.budget_limit, self.max_llm_calls,
            self.max_tokens, self.threshold_pct, self.mode,
        )  # fmt: skip

    def _attach(self) -> SpendClient:
        if not self._spec.shared:
            client: SpendClient = LocalSpend()
        else:
            client = acquire_shared(self._spec)
            try:
                assert self.name is not None
                client.subscribe(self.name, self._on_total, self._meta())
            except BaseException:
                release_shared(client)  # type: ignore[arg-type]
                raise
        self._client = client
        return client

    def _detach(self, client: SpendClient | None) -> None:
        if client is not None and client.shared:
            assert self.name is not None
            client.unsubscribe(self.name, self._on_total)
            release_shared(client)  # type: ignore[arg-type]

    def _book(self) -> SpendClient:
        client = self._client
        if client is not None:
            return client
        with self._lock:  # used again after close(): attach once, whatever the threads
            return self._client if self._client is not None else self._attach()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until this process's spend is written to the ledger (False on timeout)."""
        client = self._client
        return True if client is None else client.flush(timeout_s)

    def close(self) -> None:
        """Write what is buffered and let go of a shared ledger (used again on next use)."""
        client = self._client
        if client is not None and client.shared:
            self._client = None
            client.flush(5.0)
            self._detach(client)

    def ledger_health(self) -> dict[str, Any]:
        """``up``, ``errors``, ``pending_usd`` (spend buffered locally, not yet written)..."""
        return self._book().health()

    @property
    def counts(self) -> dict[str, int]:
        """LLM calls this process ``refused`` (raise mode), spans/traces ``flagged`` (alert
        mode) and ``alerts`` fired."""
        return dict(self._counts)

    # -- prototype API ---------------------------------------------------------------
    def check(self) -> str | None:
        """A message when use (of any key value) is at or above the threshold, else None.

        For a keyed budget the message names the key value with the highest use.
        """
        if not self._active:
            return None
        over = [s for s in self.status() if s.alerting]
        if not over:
            return None
        return max(over, key=lambda s: s.pct).message()

    # -- added -----------------------------------------------------------------------
    def add_spend(
        self,
        cost_usd: float,
        *,
        user: str | None = None,
        agent: str | None = None,
        model: str | None = None,
        trace: str | None = None,
    ) -> BudgetStatus:
        """Add spend by hand (the span processor does this for every call with a cost)."""
        cost = float(cost_usd)
        if not 0 <= cost < float("inf"):
            raise ValueError(f"cost_usd must be a finite number >= 0, got {cost_usd!r}")
        named = {"user": user, "agent": agent, "model": model, "trace": trace}
        value = _GLOBAL if self.key is None else named[self.key] or NONE_LABEL
        key, total = self._add(value, Tally(cost, 0, 0))
        status = self._status(key[2], total)
        self._after_add(key, total, None)
        return status

    def status(self) -> list[BudgetStatus]:
        """Use in the current window: one entry (global) or one per key value in the ledger."""
        client = self._book()
        now = self.clock()
        with self._lock:
            self._roll(now)
            window = self._window.id
        if self.key is None:
            return [self.status_for(None)]
        assert self.name is not None
        rows = client.rows(self.name, window, now)
        return [self._status(r.key_value, r.tally) for r in rows]

    def status_for(self, key_value: str | None) -> BudgetStatus:
        """Use of one key value (``None`` = the global budget) in the current window."""
        client = self._book()
        now = self.clock()
        with self._lock:
            self._roll(now)
            key = self._key(_GLOBAL if self.key is None else key_value or NONE_LABEL)
        return self._status(key[2], self._total(client, key, fresh=True))

    def reset(self) -> None:
        """Forget spend and alerts (of every process, on a shared ledger)."""
        client = self._book()
        with self._lock:
            self.current_spend = 0.0
            self._alerted.clear()
        assert self.name is not None
        client.delete(self.name)

    # -- span processor --------------------------------------------------------------
    def on_start(self, span: Span) -> None:
        """Raise mode: refuse an LLM span whose key value is exceeded. Alert mode: flag it."""
        if not self._active or span.kind is not SpanKind.LLM:
            return
        if span.attributes.get(attr.BUDGET_NOT_ENFORCED):
            return  # refused once already; its framework sends the call anyway
        value = self._value_of_span(span)
        if value is None:
            return  # the model is not known yet: nothing to hold the call against
        client = self._book()
        now = self.clock()
        with self._lock:
            self._roll(now)
            key = self._key(value)
        if self.mode == "raise":
            total = self._total(client, key, fresh=True)
            if self.fail_closed and not client.healthy:  # (also when that read just failed)
                self._refuse(span, key, None)
            if self._over(total):
                self._refuse(span, key, total)
            return
        trace = span.trace
        if trace is not None:
            self._remember(span.trace_id, trace)
        total = self._total(client, key, fresh=False)
        if self._over(total):
            self._flag(span, trace, self._status(key[2], total))

    def on_end(self, record: SpanRecord) -> None:
        """Add a counted call: one call, its tokens, and its cost when known."""
        if not self._active:
            return
        if record.llm_call and record.attributes.get(attr.ERROR_TYPE) != _REFUSED:
            # (a span a budget refused never reached the provider: not a call to count)
            counted = record.counts_usage
            cost = record.cost_usd if counted else None
            delta = Tally(cost or 0.0, 1, record.total_tokens if counted else 0)
            name = self._record_field
            value = _GLOBAL if name is None else getattr(record, name) or NONE_LABEL
            key, total = self._add(value, delta)
            self._after_add(key, total, record.trace_id)
        if self._live:
            trace = self._live.get(record.trace_id)
            root = None if trace is None else trace.root_span
            if root is not None and root.span_id == record.span_id:
                self._live.pop(record.trace_id, None)  # the run is over

    # -- internals -------------------------------------------------------------------
    def _value_of_span(self, span: Span) -> str | None:
        key = self.key
        if key is None:
            return _GLOBAL
        if key == "user":
            return user_of(span) or NONE_LABEL
        if key == "agent":
            return agent_of(span) or NONE_LABEL
        if key == "trace":
            return span.trace_id
        return model_of(span)

    def _key(self, value: str) -> LedgerKey:
        assert self.name is not None
        return (self.name, self._window.id, value)

    def _expiry(self, now: float) -> float | None:
        window = self._window
        if window is _RUN:
            return now + (RUN_TTL_S if self._spec.shared else _MEMORY_RUN_TTL_S)
        if window.end is None:
            return None
        return window.end_ts + (WINDOW_GRACE_S if self._spec.shared else 0.0)

    def _add(self, value: str, delta: Tally) -> tuple[LedgerKey, Tally]:
        client = self._book()
        now = self.clock()
        with self._lock:
            self._roll(now)
            key = self._key(value)
            self.current_spend += delta.spend
            total = client.add(key, delta, self._expiry(now))
            if not client.shared:
                if value == _GLOBAL:
                    total.spend = self.current_spend  # in memory, current_spend is the truth
                if now >= self._next_purge:
                    self._next_purge = now + _PURGE_EVERY_S
                    client.purge(now)
        return key, total

    def _total(self, client: SpendClient, key: LedgerKey, *, fresh: bool) -> Tally:
        total = client.view(key, self.cache_ttl_s) if fresh else client.peek(key)
        if not client.shared and key[2] == _GLOBAL:
            total.spend = self.current_spend
        return total

    def _over(self, total: Tally) -> bool:
        return (
            (self.budget_limit > 0 and total.spend >= self.budget_limit * _ALMOST)
            or (self.max_llm_calls is not None and total.calls >= self.max_llm_calls)
            or (self.max_tokens is not None and total.tokens >= self.max_tokens)
        )

    def _pct(self, total: Tally) -> float:
        """Use of the most used limit, in percent (what BudgetStatus.pct says, built cheaply:
        this runs for every call)."""
        fraction = total.spend / self.budget_limit if self.budget_limit > 0 else 0.0
        if self.max_llm_calls is not None:
            fraction = max(fraction, total.calls / self.max_llm_calls)
        if self.max_tokens is not None:
            fraction = max(fraction, total.tokens / self.max_tokens)
        return fraction * 100

    def _after_add(self, key: LedgerKey, total: Tally, trace_id: str | None) -> None:
        """Claim the alert when use crosses the threshold; flag the trace past the limit."""
        if self._pct(total) >= self.threshold_pct * _ALMOST:
            status = self._status(key[2], total)
            claim = False
            with self._lock:
                if key not in self._alerted and key[1] == self._window.id:
                    if len(self._alerted) >= _MAX_MEMO:
                        self._alerted.clear()  # asking the ledger again is harmless
                    self._alerted.add(key)
                    claim = True
            if claim:
                shared = self._book().shared
                self._book().claim(
                    key, self._expiry(self.clock()), lambda: self._fire(status, shared)
                )
        if self.mode == "alert" and trace_id is not None and self._over(total):
            trace = self._live.get(trace_id)
            if trace is not None:
                self._flag(None, trace, self._status(key[2], total))

    def _on_total(self, key: LedgerKey, total: Tally) -> None:
        """A total learnt from the shared ledger (writer thread): alert on others' spend too."""
        with self._lock:
            current = key[1] == self._window.id
        if current:
            self._after_add(key, total, None)

    def _bump(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1

    def _fire(self, status: BudgetStatus, shared: bool) -> None:
        self._bump("alerts")
        if self.on_alert is None:
            return
        try:
            self.on_alert(status)
        except Exception as exc:
            report("budget_alert.on_alert", exc, reraise_in_strict=not shared)

    def _status(self, value: str, total: Tally) -> BudgetStatus:
        window = self._window
        assert self.name is not None
        return BudgetStatus(
            key=self.key,
            key_value=None if self.key is None else value,
            period=self.period,
            window_start=window.start,
            window_end=window.end,
            spend=total.spend,
            limit=self.budget_limit,
            threshold_pct=self.threshold_pct,
            name=self.name,
            calls=total.calls,
            tokens=total.tokens,
            max_llm_calls=self.max_llm_calls,
            max_tokens=self.max_tokens,
        )

    def _refuse(self, span: Span, key: LedgerKey, total: Tally | None) -> None:
        if total is None:
            reason = (
                f"Budget {self.name!r} refuses LLM calls while its ledger is unreachable "
                f"(fail_closed=True): {self.ledger_url}"
            )
            status = None
        else:
            status = self._status(key[2], total)
            reason = f"Budget exceeded: {status.used()}{status.where()}"
        self._bump("refused")
        span.set_attribute(attr.ERROR_TYPE, _REFUSED)
        span.set_attribute(attr.ERROR_MESSAGE, reason)
        self._flag(span, span.trace, status, reason=reason, count=False)
        raise BudgetExceeded(reason, budget=self, key=None if self.key is None else key[2])

    def _flag(
        self,
        span: Span | None,
        trace: Trace | None,
        status: BudgetStatus | None,
        *,
        reason: str | None = None,
        count: bool = True,
    ) -> None:
        """Mark the span and its trace: ``budget.exceeded`` = the names of the budgets."""
        assert self.name is not None
        if reason is None and status is not None:
            reason = f"Budget exceeded: {status.used()}{status.where()}"
        if count:
            self._bump("flagged")
        if span is not None:
            span.set_attribute(
                BUDGET_EXCEEDED, _with_name(span.attributes.get(BUDGET_EXCEEDED), self.name)
            )
            span.set_attribute(BUDGET_EXCEEDED_REASON, reason)
        if trace is not None:
            trace.attributes[BUDGET_EXCEEDED] = _with_name(
                trace.attributes.get(BUDGET_EXCEEDED), self.name
            )

    def _remember(self, trace_id: str, trace: Trace) -> None:
        live = self._live
        if trace_id in live:
            return
        if len(live) >= _MAX_MEMO:
            with self._lock, contextlib.suppress(StopIteration, RuntimeError, KeyError):
                del live[next(iter(live))]  # the oldest run
        live[trace_id] = trace

    def _enter_window(self, now: float) -> None:
        assert self.period is not None
        start, end = budget_window(self.period, now)
        self._window = _Window(start.isoformat(), start, end, end.timestamp())

    def _roll(self, now: float) -> None:
        """Start a new window when ``now`` has passed the current one (lock held)."""
        if now < self._window.end_ts:
            return
        self._enter_window(now)
        self.current_spend = 0.0
        self._alerted.clear()
        client = self._client
        if client is not None and not client.shared:
            client.purge(now)


def check_ledger_move(url: str, budgets: list[BudgetAlert]) -> None:
    """ConfigurationError if ``budgets`` cannot all move to the ledger ``url`` (a bad URL,
    or two of them of one name on a shared ledger); nothing is changed."""
    spec = parse_ledger_url(url)
    if not spec.shared:
        return
    seen: dict[str | None, BudgetAlert] = {}
    for budget in budgets:
        other = seen.setdefault(budget.name, budget)
        if other is not budget:
            raise ConfigurationError(
                f"two budgets named {budget.name!r} would share the ledger {mask_url(url)}: "
                "each would add every call to the same totals; give them distinct name= values"
            )


def _with_name(current: object, name: str) -> str:
    names = [n for n in current.split(",") if n] if isinstance(current, str) else []
    if name not in names:
        names.append(name)
    return ",".join(names)
