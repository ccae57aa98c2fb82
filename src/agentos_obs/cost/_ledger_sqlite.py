"""The SQLite ledger: spend shared by every process on one host, kept across restarts.

Its tables (``budget_spend``, ``budget_alerts``, ``budget_meta``) may live in their own file
or in the span store's file: the store's migrations never touch them. The file is in WAL
mode, so reads never wait for a writer. Every write is one ``BEGIN IMMEDIATE`` transaction
of UPSERTs::

    INSERT INTO budget_spend (...) VALUES (...)
    ON CONFLICT (budget, window, key_value) DO UPDATE SET spend = spend + excluded.spend, ...
    RETURNING spend, calls, tokens

so concurrent writers from several processes serialise in SQLite and each increment counts
once; the transaction commits or not at all, so a retried batch is never counted twice.
A write waits ``busy_timeout_s`` for another process's lock, then fails (the spend client
keeps the batch and retries).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agentos_obs.cost._ledger import (
    BudgetMeta,
    LedgerBackend,
    LedgerEntry,
    LedgerKey,
    LedgerRow,
    Tally,
)

__all__ = ["SQLiteLedger"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS budget_spend (
        budget     TEXT NOT NULL,
        window     TEXT NOT NULL,
        key_value  TEXT NOT NULL,
        spend      REAL NOT NULL DEFAULT 0,
        calls      INTEGER NOT NULL DEFAULT 0,
        tokens     INTEGER NOT NULL DEFAULT 0,
        expires_at REAL,                      -- epoch seconds; NULL: never
        updated_at REAL NOT NULL,
        PRIMARY KEY (budget, window, key_value)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS budget_alerts (
        budget     TEXT NOT NULL,
        window     TEXT NOT NULL,
        key_value  TEXT NOT NULL,
        claimed_at REAL NOT NULL,
        expires_at REAL,
        PRIMARY KEY (budget, window, key_value)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS budget_meta (
        budget        TEXT PRIMARY KEY,
        key           TEXT,
        period        TEXT,
        limit_usd     REAL NOT NULL,
        max_llm_calls INTEGER,
        max_tokens    INTEGER,
        threshold_pct REAL NOT NULL,
        mode          TEXT NOT NULL,
        updated_at    REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS budget_spend_expiry ON budget_spend (expires_at)",
)

_UPSERT = """
INSERT INTO budget_spend (budget, window, key_value, spend, calls, tokens, expires_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (budget, window, key_value) DO UPDATE SET
    spend = spend + excluded.spend,
    calls = calls + excluded.calls,
    tokens = tokens + excluded.tokens,
    expires_at = CASE WHEN excluded.expires_at IS NULL OR expires_at IS NULL THEN NULL
                      ELSE max(expires_at, excluded.expires_at) END,
    updated_at = excluded.updated_at
RETURNING spend, calls, tokens
"""


def _use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL (persistent: done once per file). The switch takes an exclusive
    lock the busy handler does not always wait for when processes open a new file together."""
    deadline = time.monotonic() + max(timeout_s, 1.0)
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if mode != "wal":
        raise sqlite3.OperationalError(
            f"the budget ledger cannot use WAL journaling (got {mode!r}); it needs a local "
            "file system"
        )


class SQLiteLedger(LedgerBackend):
    """A ledger in a SQLite file. Thread-safe: one connection per use, under a lock each."""

    scheme = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_s: float = 1.0) -> None:
        self.path = path
        self.display_url = f"sqlite:///{path}"
        self._busy_timeout_s = busy_timeout_s
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._inherited: list[sqlite3.Connection] = []

    # -- connections -----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path),
            timeout=self._busy_timeout_s,
            isolation_level=None,  # autocommit: transactions are explicit
            check_same_thread=False,  # each connection is used under its own lock
        )
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable against process crashes
            _use_wal(conn, self._busy_timeout_s)
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    def _read_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._connect()
        return self._reader

    def _fail(self, which: str) -> None:
        """Drop a connection after an error: the next use opens a fresh one (the file may
        have been replaced or deleted meanwhile)."""
        conn = self._writer if which == "w" else self._reader
        if which == "w":
            self._writer = None
        else:
            self._reader = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- writes ----------------------------------------------------------------------
    def apply(
        self, batch_id: str, entries: Sequence[LedgerEntry], *, client_id: str = ""
    ) -> list[Tally]:
        now = time.time()
        with self._write_lock:
            try:
                conn = self._write_conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    totals = []
                    for e in entries:
                        b, w, v = e.key
                        t = e.tally
                        row = conn.execute(
                            _UPSERT, (b, w, v, t.spend, t.calls, t.tokens, e.expires_at, now)
                        ).fetchone()
                        totals.append(Tally(float(row[0]), int(row[1]), int(row[2])))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error:
                self._fail("w")
                raise
        return totals

    def claim(self, key: LedgerKey, expires_at: float | None) -> bool:
        with self._write_lock:
            try:
                cursor = self._write_conn().execute(
                    "INSERT OR IGNORE INTO budget_alerts "
                    "(budget, window, key_value, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (*key, time.time(), expires_at),
                )
            except sqlite3.Error:
                self._fail("w")
                raise
        return cursor.rowcount == 1

    def write_meta(self, metas: Sequence[BudgetMeta]) -> None:
        now = time.time()
        rows = [
            (
                m.name, m.key, m.period, m.limit_usd, m.max_llm_calls, m.max_tokens,
                m.threshold_pct, m.mode, now,
            )
            for m in metas
        ]  # fmt: skip
        with self._write_lock:
            try:
                conn = self._write_conn()
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO budget_meta VALUES (?,?,?,?,?,?,?,?,?)", rows
                )
                conn.execute("COMMIT")
            except sqlite3.Error:
                self._fail("w")
                raise

    def delete(self, budget: str) -> None:
        with self._write_lock:
            try:
                conn = self._write_conn()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM budget_spend WHERE budget = ?", (budget,))
                conn.execute("DELETE FROM budget_alerts WHERE budget = ?", (budget,))
                conn.execute("COMMIT")
            except sqlite3.Error:
                self._fail("w")
                raise

    def purge(self, now: float) -> None:
        with self._write_lock:
            try:
                conn = self._write_conn()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM budget_spend WHERE expires_at <= ?", (now,))
                conn.execute("DELETE FROM budget_alerts WHERE expires_at <= ?", (now,))
                conn.execute("COMMIT")
            except sqlite3.Error:
                self._fail("w")
                raise

    # -- reads -----------------------------------------------------------------------
    def read(self, keys: Sequence[LedgerKey]) -> list[Tally]:
        out: list[Tally] = []
        with self._read_lock:
            try:
                conn = self._read_conn()
                for b, w, v in keys:
                    row = conn.execute(
                        "SELECT spend, calls, tokens FROM budget_spend "
                        "WHERE budget = ? AND window = ? AND key_value = ?",
                        (b, w, v),
                    ).fetchone()
                    out.append(Tally() if row is None else Tally(row[0], row[1], row[2]))
            except sqlite3.Error:
                self._fail("r")
                raise
        return out

    def rows(self, budget: str | None, window: str | None, now: float) -> list[LedgerRow]:
        sql = (
            "SELECT budget, window, key_value, spend, calls, tokens, expires_at FROM budget_spend "
            "WHERE (expires_at IS NULL OR expires_at > ?)"
        )
        params: list[object] = [now]
        if budget is not None:
            sql += " AND budget = ?"
            params.append(budget)
        if window is not None:
            sql += " AND window = ?"
            params.append(window)
        with self._read_lock:
            try:
                found = self._read_conn().execute(sql, params).fetchall()
            except sqlite3.Error:
                self._fail("r")
                raise
        return [LedgerRow(r[0], r[1], r[2], Tally(r[3], r[4], r[5]), r[6]) for r in found]

    def metas(self) -> list[BudgetMeta]:
        with self._read_lock:
            try:
                found = (
                    self._read_conn()
                    .execute(
                        "SELECT budget, key, period, limit_usd, max_llm_calls, max_tokens, "
                        "threshold_pct, mode FROM budget_meta ORDER BY budget"
                    )
                    .fetchall()
                )
            except sqlite3.Error:
                self._fail("r")
                raise
        return [BudgetMeta(*r) for r in found]

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        with self._write_lock:
            self._fail("w")
        with self._read_lock:
            self._fail("r")

    def after_fork(self) -> None:
        # A SQLite connection must not cross fork(): keep the parent's objects referenced
        # (closing them here could disturb the parent's file locks) and open new ones.
        self._inherited.extend(c for c in (self._writer, self._reader) if c is not None)
        self._writer = self._reader = None
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
