"""Opening a ledger from its parsed URL: the one module that knows every backend (so the
backends depend on the shared types in ``_ledger`` and nothing depends back on them)."""

from __future__ import annotations

from agentos_obs.cost._ledger import LedgerBackend, LedgerSpec, MemoryLedger, mask_url

__all__ = ["open_backend"]


def open_backend(spec: LedgerSpec) -> LedgerBackend:
    """The backend of a parsed URL (no I/O yet for Redis; SQLite opens its file lazily)."""
    if spec.scheme == "memory":
        return MemoryLedger()
    if spec.scheme == "sqlite":
        from agentos_obs.cost._ledger_sqlite import SQLiteLedger

        assert spec.path is not None
        timeout = float(dict(spec.options).get("timeout", "1.0"))
        return SQLiteLedger(spec.path, busy_timeout_s=timeout)
    from agentos_obs.cost._ledger_redis import RedisLedger

    return RedisLedger(spec.url, display_url=mask_url(spec.url))
