"""The budget ledger: where budgets keep their spend, and the one way to name it.

A ledger holds one :class:`Tally` (USD spent, LLM calls, tokens) per ``(budget, window, key
value)``: ``("user-daily", "2025-06-01", "alice")``. Three backends, one interface
(:class:`LedgerBackend`):

* ``"memory"`` — a dict inside one process (the default, the behaviour budgets always had);
* ``"sqlite:///PATH"`` — a SQLite file in WAL mode, shared by every process on one host and
  kept across restarts (:mod:`agentos_obs.cost._ledger_sqlite`);
* ``"redis://HOST:PORT/DB"`` — a Redis server shared by every host
  (:mod:`agentos_obs.cost._ledger_redis`).

Every write is an atomic increment in the backend (an UPSERT adding to the row, a Lua
script of HINCRBYFLOAT/HINCRBY): two processes adding at once both count, with no
read-modify-write in between. Rows of a window expire an hour after it ends (the hour lets
hosts whose clocks differ a little finish the window); rows of a run (per-run limits)
expire a day after their last write.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentos_obs.errors import ConfigurationError

__all__ = [
    "LEDGER_SCHEMES",
    "RUN_TTL_S",
    "WINDOW_GRACE_S",
    "BudgetMeta",
    "LedgerBackend",
    "LedgerEntry",
    "LedgerKey",
    "LedgerRow",
    "LedgerSpec",
    "MemoryLedger",
    "Tally",
    "mask_url",
    "parse_ledger_url",
]

LEDGER_SCHEMES = ("memory", "sqlite", "redis")
WINDOW_GRACE_S = 3600.0  # a window's rows live this long after its end
RUN_TTL_S = 86400.0  # a run's rows live this long after their last write

# (budget name, window id, key value). Window ids: "2025-06-01T00:00:00+00:00" (the start of
# a calendar window), "all" (lifetime budgets), "run" (per-run limits, keyed by trace id).
LedgerKey = tuple[str, str, str]


class Tally:
    """USD spent, LLM calls and tokens of one key in one window (mutable, cheap)."""

    __slots__ = ("calls", "spend", "tokens")

    def __init__(self, spend: float = 0.0, calls: int = 0, tokens: int = 0) -> None:
        self.spend = spend
        self.calls = calls
        self.tokens = tokens

    def add(self, other: Tally) -> None:
        self.spend += other.spend
        self.calls += other.calls
        self.tokens += other.tokens

    def plus(self, *others: Tally) -> Tally:
        total = Tally(self.spend, self.calls, self.tokens)
        for other in others:
            total.add(other)
        return total

    @property
    def empty(self) -> bool:
        return self.spend == 0 and self.calls == 0 and self.tokens == 0

    def to_dict(self) -> dict[str, Any]:
        return {"spend": self.spend, "calls": self.calls, "tokens": self.tokens}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tally):
            return NotImplemented
        return (self.spend, self.calls, self.tokens) == (other.spend, other.calls, other.tokens)

    def __repr__(self) -> str:
        return f"Tally(spend={self.spend!r}, calls={self.calls}, tokens={self.tokens})"


@dataclass(frozen=True)
class LedgerEntry:
    """An increment to apply: ``tally`` added to ``key``, which expires at ``expires_at``
    (epoch seconds; None: never)."""

    key: LedgerKey
    tally: Tally
    expires_at: float | None


@dataclass(frozen=True)
class LedgerRow:
    """One stored total, as listed by :meth:`LedgerBackend.rows`."""

    budget: str
    window: str
    key_value: str
    tally: Tally
    expires_at: float | None


@dataclass(frozen=True)
class BudgetMeta:
    """A budget's settings, written to the ledger so ``agentos-obs budgets`` can show limits."""

    name: str
    key: str | None
    period: str | None
    limit_usd: float
    max_llm_calls: int | None
    max_tokens: int | None
    threshold_pct: float
    mode: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "period": self.period,
            "limit_usd": self.limit_usd,
            "max_llm_calls": self.max_llm_calls,
            "max_tokens": self.max_tokens,
            "threshold_pct": self.threshold_pct,
            "mode": self.mode,
        }


class LedgerBackend(ABC):
    """Storage of a ledger. Methods do I/O and raise on failure; callers (the spend clients)
    catch, count and fall back. Each method is atomic on its own."""

    scheme: str = ""
    display_url: str = ""  # the URL with any password masked

    @abstractmethod
    def apply(
        self, batch_id: str, entries: Sequence[LedgerEntry], *, client_id: str = ""
    ) -> list[Tally]:
        """Add every entry (atomically, once even if retried with the same ``batch_id``)
        and return each key's total after the write, in order. ``client_id`` names the
        writing process (Redis keeps each one's share, to re-add what a restart lost)."""

    @abstractmethod
    def read(self, keys: Sequence[LedgerKey]) -> list[Tally]:
        """Current totals (zero for keys never written)."""

    @abstractmethod
    def rows(self, budget: str | None, window: str | None, now: float) -> list[LedgerRow]:
        """Stored totals of ``budget`` (None: all) in ``window`` (None: all live windows)."""

    @abstractmethod
    def claim(self, key: LedgerKey, expires_at: float | None) -> bool:
        """True for the first caller (of any process) to claim the alert of ``key``."""

    @abstractmethod
    def write_meta(self, metas: Sequence[BudgetMeta]) -> None: ...

    @abstractmethod
    def metas(self) -> list[BudgetMeta]: ...

    @abstractmethod
    def delete(self, budget: str) -> None:
        """Forget every total and alert of ``budget`` (all windows)."""

    def purge(self, now: float) -> None:  # noqa: B027 - optional: backends that expire keys
        """Drop rows that expired before ``now``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def after_fork(self) -> None:  # noqa: B027 - optional
        """Forget connections inherited from the parent process (never use them)."""


class MemoryLedger(LedgerBackend):
    """The in-process backend: a dict under a lock (one per budget, like before)."""

    scheme = "memory"
    display_url = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[LedgerKey, tuple[Tally, float | None]] = {}
        self._claimed: set[LedgerKey] = set()
        self._meta: dict[str, BudgetMeta] = {}

    def add(self, key: LedgerKey, delta: Tally, expires_at: float | None) -> Tally:
        """Add ``delta`` and return a copy of the new total (the hot path of memory budgets)."""
        with self._lock:
            slot = self._totals.get(key)
            if slot is None:
                total = Tally()
                self._totals[key] = (total, expires_at)
            else:
                total = slot[0]
            total.add(delta)
            return Tally(total.spend, total.calls, total.tokens)

    def get(self, key: LedgerKey) -> Tally:
        with self._lock:
            slot = self._totals.get(key)
            return Tally() if slot is None else slot[0].plus()

    def apply(
        self, batch_id: str, entries: Sequence[LedgerEntry], *, client_id: str = ""
    ) -> list[Tally]:
        return [self.add(e.key, e.tally, e.expires_at) for e in entries]

    def read(self, keys: Sequence[LedgerKey]) -> list[Tally]:
        return [self.get(k) for k in keys]

    def rows(self, budget: str | None, window: str | None, now: float) -> list[LedgerRow]:
        with self._lock:
            items = list(self._totals.items())
        return [
            LedgerRow(b, w, v, total.plus(), expires)
            for (b, w, v), (total, expires) in items
            if (budget is None or b == budget)
            and (window is None or w == window)
            and (expires is None or expires > now)
        ]

    def claim(self, key: LedgerKey, expires_at: float | None) -> bool:
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def write_meta(self, metas: Sequence[BudgetMeta]) -> None:
        with self._lock:
            self._meta.update((m.name, m) for m in metas)

    def metas(self) -> list[BudgetMeta]:
        with self._lock:
            return list(self._meta.values())

    def delete(self, budget: str) -> None:
        with self._lock:
            self._totals = {k: v for k, v in self._totals.items() if k[0] != budget}
            self._claimed = {k for k in self._claimed if k[0] != budget}

    def purge(self, now: float) -> None:
        with self._lock:
            gone = [k for k, (_, exp) in self._totals.items() if exp is not None and exp <= now]
            for k in gone:
                del self._totals[k]
                self._claimed.discard(k)


# -- URLs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerSpec:
    """A parsed ledger URL. ``identity`` names the shared ledger: one client per process."""

    scheme: str
    url: str
    identity: str
    path: Path | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def shared(self) -> bool:
        return self.scheme != "memory"


_USAGE = "'memory', 'sqlite:///PATH' or 'redis://HOST:PORT/DB'"


def parse_ledger_url(url: object) -> LedgerSpec:
    """Check a ledger URL without any I/O; ConfigurationError naming the problem if bad.

    ``sqlite:///budgets.db`` is relative to the working directory, ``sqlite:////var/x.db``
    absolute (SQLAlchemy's convention); ``~`` is expanded. Options: ``?timeout=SECONDS``
    (how long a write waits for another process's lock, default 1). Redis URLs take
    redis-py's options (``?socket_timeout=0.5``); ``rediss://`` uses TLS.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"budget ledger must be {_USAGE}, got {url!r}")
    text = url.strip()
    if text in ("memory", "memory://"):
        return LedgerSpec("memory", "memory", "memory")
    scheme = text.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return _parse_sqlite(text)
    if scheme in ("redis", "rediss"):
        return _parse_redis(text)
    raise ConfigurationError(f"budget ledger must be {_USAGE}, got {url!r}")


def _parse_sqlite(text: str) -> LedgerSpec:
    if not text.lower().startswith("sqlite:///"):
        raise ConfigurationError(
            f"a SQLite ledger URL is sqlite:///PATH (three slashes; four for an absolute "
            f"path), got {text!r}"
        )
    rest = text[len("sqlite:///") :]
    raw_path, _, query = rest.partition("?")
    if not raw_path:
        raise ConfigurationError(f"the SQLite ledger URL {text!r} names no file")
    options: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name != "timeout":
            raise ConfigurationError(
                f"unknown option {name!r} in the SQLite ledger URL {text!r} (known: timeout)"
            )
        try:
            timeout = float(values[-1])
        except ValueError:
            raise ConfigurationError(f"timeout must be seconds, got {values[-1]!r}") from None
        if not 0 <= timeout < 3600:
            raise ConfigurationError(f"timeout must be in [0, 3600) seconds, got {timeout!r}")
        options["timeout"] = repr(timeout)
    path = Path(os.path.expanduser(raw_path)).absolute()
    if path.is_dir():
        raise ConfigurationError(f"the SQLite ledger {path} is a directory, not a file")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"cannot create the SQLite ledger {path}: {parent} is not writable"
        )
    return LedgerSpec(
        "sqlite", text, f"sqlite:{path}", path=path, options=tuple(sorted(options.items()))
    )


def _parse_redis(text: str) -> LedgerSpec:
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError when not a number or out of range
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis ledger URL {mask_url(text)!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigurationError(f"the Redis ledger URL {mask_url(text)!r} names no host")
    db_text = parts.path.lstrip("/")
    query = parse_qs(parts.query)
    if not db_text and "db" in query:
        db_text = query["db"][-1]
    try:
        db = int(db_text or 0)
    except ValueError:
        raise ConfigurationError(
            f"the database of a Redis ledger URL is a number (redis://HOST:PORT/DB), got "
            f"{db_text!r} in {mask_url(text)!r}"
        ) from None
    if db < 0:
        raise ConfigurationError(f"the Redis database must be >= 0, got {db}")
    try:
        import redis.connection
    except ImportError:
        raise ConfigurationError(
            "a Redis budget ledger needs redis-py: pip install 'agentos-obs[redis]'"
        ) from None
    try:
        redis.connection.parse_url(text)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis ledger URL {mask_url(text)!r}: {exc}") from None
    identity = f"{parts.scheme}://{parts.hostname}:{port or 6379}/{db}"
    return LedgerSpec("redis", text, identity)


def mask_url(text: str) -> str:
    """``text`` with the password of a URL replaced by ``***``."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("@", 1)[-1]
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
