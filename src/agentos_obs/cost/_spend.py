"""Spend clients: what a budget talks to, in front of a ledger backend.

:class:`LocalSpend` is the in-process ledger (the default): every call is a dict update
under a lock and takes effect at once. :class:`~agentos_obs.cost._shared_spend.SharedSpend`
fronts a shared backend (a SQLite file, Redis). Both implement :class:`SpendClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentos_obs.cost._ledger import BudgetMeta, LedgerKey, LedgerRow, MemoryLedger, Tally

__all__ = ["Listener", "LocalSpend", "SpendClient"]

Listener = Callable[[LedgerKey, Tally], None]


class SpendClient:
    """The operations a budget uses; both clients implement them."""

    scheme = ""
    shared = False

    def add(self, key: LedgerKey, delta: Tally, expires_at: float | None) -> Tally:
        """Add ``delta``; return the key's total as this process now knows it (no I/O)."""
        raise NotImplementedError

    def view(self, key: LedgerKey, max_age_s: float) -> Tally:
        """The key's total, read from the ledger when the cached one is older than
        ``max_age_s`` (and the ledger is up); never raises."""
        raise NotImplementedError

    def peek(self, key: LedgerKey) -> Tally:
        """The key's total as known, without I/O."""
        raise NotImplementedError

    def claim(
        self, key: LedgerKey, expires_at: float | None, on_claimed: Callable[[], None]
    ) -> None:
        """Claim the alert of ``key``; ``on_claimed()`` runs if this process won it."""
        raise NotImplementedError

    def rows(self, budget: str, window: str | None, now: float) -> list[LedgerRow]:
        """Totals of ``budget`` in ``window``, this process's unwritten spend included."""
        raise NotImplementedError

    @property
    def healthy(self) -> bool:
        return True

    def subscribe(self, name: str, listener: Listener, meta: BudgetMeta) -> None:
        """Call ``listener(key, total)`` whenever a total of budget ``name`` is learnt."""

    def unsubscribe(self, name: str, listener: Listener) -> None: ...

    def delete(self, budget: str) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float = 5.0) -> bool:
        return True

    def purge(self, now: float) -> None:
        """Forget totals that expired before ``now`` (in-process ledgers; shared ones expire
        rows in the ledger)."""

    def health(self) -> dict[str, Any]:
        return {"ledger": self.scheme, "up": True, "errors": 0, "pending_usd": 0.0}


class LocalSpend(SpendClient):
    """The in-process ledger of one budget (the default): exact and immediate."""

    scheme = "memory"

    def __init__(self) -> None:
        self.ledger = MemoryLedger()

    def add(self, key: LedgerKey, delta: Tally, expires_at: float | None) -> Tally:
        return self.ledger.add(key, delta, expires_at)

    def view(self, key: LedgerKey, max_age_s: float) -> Tally:
        return self.ledger.get(key)

    def peek(self, key: LedgerKey) -> Tally:
        return self.ledger.get(key)

    def claim(
        self, key: LedgerKey, expires_at: float | None, on_claimed: Callable[[], None]
    ) -> None:
        if self.ledger.claim(key, expires_at):
            on_claimed()

    def rows(self, budget: str, window: str | None, now: float) -> list[LedgerRow]:
        return self.ledger.rows(budget, window, now)

    def delete(self, budget: str) -> None:
        self.ledger.delete(budget)

    def purge(self, now: float) -> None:
        self.ledger.purge(now)
