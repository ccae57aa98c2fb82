"""The embedded span store: finished traces in one SQLite file, queried by the CLI and UI.

``SQLiteStore(path)`` is a tracer exporter (``tracer.add_exporter(store)``). The caller's
cost is one append to a bounded queue; a background thread writes batches of traces in
one transaction each. When the queue is full, traces are dropped and counted
(``_guard.dropped_counts()["store"]``), never waited for.

Durability and sharing:

* WAL journal with ``synchronous=NORMAL``: a committed batch survives the process being
  killed (even with SIGKILL); what is lost is at most the batch not yet written.
* Several processes (web workers) may write the same file: each has its own connection and
  writes short transactions; SQLite serialises them (``busy_timeout_s``).
* A forked child (pre-fork servers) gets its own connection and writer thread.
* A locked, read-only or failing database never reaches the app: the batch is counted as
  dropped and the failure logged once.
* A batch never fails for one bad trace: when SQLite rejects a value, the batch is written
  again trace by trace and only the rejected trace is dropped, counted and its cause
  logged once.
* The file deleted while the app runs (its data directory removed): the next batch sees
  the path no longer names the file it writes to, makes a new one, says so once in the
  log and counts it in ``stats()["recreated"]``; a batch written while the file went away
  is written again into the new one.

Reading: :meth:`SQLiteStore.list_traces`, :meth:`~SQLiteStore.get_trace`,
:meth:`~SQLiteStore.aggregate`, :meth:`~SQLiteStore.summary`, :meth:`~SQLiteStore.usage_rows`.
Queries read what has been written; call :meth:`~SQLiteStore.flush` first to include traces
still queued. ``SQLiteStore.open_readonly(path)`` opens a file for reading only (dashboards).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import agentos_obs.store._queries as queries
import agentos_obs.store._rows as rows
from agentos_obs._internal.batching import BatchWorker
from agentos_obs._internal.guard import dropped_counts, report
from agentos_obs.errors import ConfigurationError
from agentos_obs.store._queries import TimeArg
from agentos_obs.store._schema import SCHEMA_VERSION, apply_migrations, read_version
from agentos_obs.tracing import SpanStatus, TraceRecord

__all__ = ["SQLiteStore", "default_db_path"]

_APP_DIR = "agentos-obs"
_DB_NAME = "traces.db"

R = TypeVar("R")

logger = logging.getLogger("agentos_obs")

# Connections inherited through fork() must not be closed by the child (SQLite's docs: a
# connection never crosses a fork); they are parked here instead of being garbage collected.
_inherited_connections: list[sqlite3.Connection] = []


def default_db_path() -> Path:
    """Where the store lives by default: ``$AGENTOS_OBS_DB``, else a per-user data directory.

    Linux and other Unix: ``$XDG_DATA_HOME/agentos-obs/traces.db`` (``~/.local/share`` when
    unset); macOS: ``~/Library/Application Support/agentos-obs/traces.db``; Windows:
    ``%LOCALAPPDATA%\\agentos-obs\\traces.db``. The directory is created by the store.
    """
    override = os.environ.get("AGENTOS_OBS_DB", "").strip()
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "").strip()
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / _APP_DIR / _DB_NAME


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# One trace ready to write: its id, its traces row, its spans rows.
_Prepared = tuple[str, tuple[Any, ...], list[tuple[Any, ...]]]


def _commit(conn: sqlite3.Connection, prepared: list[_Prepared]) -> dict[int, BaseException]:
    """Write ``prepared`` in one transaction; return the traces SQLite rejected, by index.

    The common case is one ``executemany`` per table. When a value is rejected (an integer
    beyond int64, text that is not UTF-8, a constraint), that attempt is rolled back and the
    traces are written again one by one under savepoints, still in one transaction: only
    those SQLite rejects are left out. An OperationalError (a lock, a full disk, a read-only
    file, I/O) is about the database, not the data: it is raised, and the batch is lost.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            conn.executemany(rows.UPSERT_TRACE, [item[1] for item in prepared])
            conn.executemany(rows.UPSERT_SPAN, [row for item in prepared for row in item[2]])
            rejected: dict[int, BaseException] = {}
        except sqlite3.OperationalError:
            raise
        except Exception:
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            rejected = _commit_one_by_one(conn, prepared)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return rejected


def _commit_one_by_one(
    conn: sqlite3.Connection, prepared: list[_Prepared]
) -> dict[int, BaseException]:
    rejected: dict[int, BaseException] = {}
    for index, (_, trace_row, span_rows) in enumerate(prepared):
        conn.execute("SAVEPOINT one_trace")
        try:
            conn.execute(rows.UPSERT_TRACE, trace_row)
            conn.executemany(rows.UPSERT_SPAN, span_rows)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            conn.execute("ROLLBACK TO one_trace")
            rejected[index] = exc
        conn.execute("RELEASE one_trace")
    return rejected


class SQLiteStore:
    """Finished traces in a SQLite file; a tracer exporter with a query API.

    Args:
        path: the database file (created with its directory); ``None``:
            :func:`default_db_path`.
        batch_size: traces written per transaction at most.
        flush_interval_s: longest a queued trace waits before being written.
        max_queue: traces waiting at most; more are dropped and counted.
        readonly: open an existing store for queries only (no writer thread).
        busy_timeout_s: how long a write waits for another process's lock.
        max_age_days, max_bytes: retention applied by the writer every
            ``retention_interval_s`` (see :meth:`retention`).
    """

    queued = True  # export() only queues for the writer thread: a tracer calls it directly

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        max_queue: int = 10_000,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        max_age_days: float | None = None,
        max_bytes: int | None = None,
        retention_interval_s: float = 3600.0,
    ) -> None:
        resolved = Path(default_db_path() if path is None else path).expanduser()
        if str(resolved) in (":memory:", "") or str(path).startswith("file:"):
            raise ConfigurationError(
                f"SQLiteStore needs a file path (one file shared by the writer thread and "
                f"readers), got {path!r}"
            )
        try:
            is_dir = resolved.is_dir()
        except OSError as exc:
            raise ConfigurationError(f"cannot use the span store path {resolved}: {exc}") from exc
        if is_dir:
            raise ConfigurationError(f"SQLiteStore path {resolved} is a directory")
        if busy_timeout_s < 0:
            raise ConfigurationError(f"busy_timeout_s must be >= 0, got {busy_timeout_s!r}")
        if max_age_days is not None and max_age_days < 0:
            raise ConfigurationError(f"max_age_days must be >= 0, got {max_age_days!r}")
        if max_bytes is not None and max_bytes < 0:
            raise ConfigurationError(f"max_bytes must be >= 0, got {max_bytes!r}")
        self.path = resolved
        self.readonly = bool(readonly)
        self._busy_timeout_s = float(busy_timeout_s)
        self._max_age_days = max_age_days
        self._max_bytes = max_bytes
        self._retention_interval_s = float(retention_interval_s)
        self._next_retention = 0.0
        self._read_lock = threading.Lock()
        self._read_conn: sqlite3.Connection | None = None
        self._write_conn: sqlite3.Connection | None = None
        self.written_traces = 0
        self.written_spans = 0
        self.recreated = 0  # times the file was deleted under the writer and made again
        self._logged: set[str] = set()
        self._read_conn = self._open_readonly() if self.readonly else self._open_and_migrate()
        self._write_identity = self._file_identity()
        self._worker: BatchWorker[TraceRecord] | None = None
        if not self.readonly:
            self._worker = BatchWorker(
                "store",
                self._write_batch,
                batch_size=batch_size,
                flush_interval_s=flush_interval_s,
                max_queue=max_queue,
                expected_errors=(sqlite3.Error, OSError),
                on_reset_after_fork=self._forget_connections,
            )

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str] | None = None) -> SQLiteStore:
        """Open an existing store for queries only (the dashboard, the CLI)."""
        return cls(path, readonly=True)

    # -- connections -----------------------------------------------------------------
    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        target = self.path.resolve().as_uri() + "?mode=ro" if readonly else str(self.path)
        conn = sqlite3.connect(
            target,
            uri=readonly,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # autocommit: transactions are explicit
            check_same_thread=False,  # guarded by our locks / owned by the writer thread
        )
        conn.row_factory = sqlite3.Row
        if not readonly:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: safe against process crashes
        return conn

    def _open_and_migrate(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the directory of the span store {self.path}: {exc}"
            ) from exc
        try:
            conn = self._connect()
            try:
                if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                    # Only possible before the first table: lets retention give space back.
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._set_wal(conn)
                apply_migrations(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"cannot open the span store {self.path}: {exc}") from exc
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL takes an exclusive lock that the busy handler does not always
        # wait for when several processes open a new file at once: retry for a while.
        deadline = time.monotonic() + max(self._busy_timeout_s, 1.0)
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise ConfigurationError(
                f"the span store {self.path} cannot use WAL journaling (got {mode!r}); "
                "it needs a local file system"
            )

    def _open_readonly(self) -> sqlite3.Connection:
        try:
            exists = self.path.is_file()
        except OSError:
            exists = False
        if not exists:
            raise ConfigurationError(f"no span store at {self.path}")
        try:
            conn = self._connect(readonly=True)
            version = read_version(conn)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"cannot read the span store {self.path}: {exc}") from exc
        if version != SCHEMA_VERSION:
            conn.close()
            if version == 0:
                raise ConfigurationError(f"{self.path} is not an agentos-obs span store")
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path} has schema version {version}, newer than this agentos-obs "
                    f"reads ({SCHEMA_VERSION}): upgrade agentos-obs"
                )
            raise ConfigurationError(
                f"{self.path} has schema version {version}; open it once for writing "
                f"(SQLiteStore(path)) to migrate it to {SCHEMA_VERSION}"
            )
        return conn

    def _forget_connections(self) -> None:
        for conn in (self._read_conn, self._write_conn):
            if conn is not None:
                _inherited_connections.append(conn)
        self._read_conn = None
        self._write_conn = None
        self._read_lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        if self._read_conn is None:
            self._read_conn = self._connect(readonly=self.readonly)
        return self._read_conn

    def _query(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        with self._read_lock:
            return fn(self._reader(), *args, **kwargs)

    # -- writing ---------------------------------------------------------------------
    def export(self, trace: TraceRecord) -> None:
        """Queue a finished trace's record for writing (the tracer calls this; never blocks).

        A live :class:`~agentos_obs.tracing.Trace` that has ended is accepted too (its
        ``record`` is queued).
        """
        if self._worker is None:
            raise ConfigurationError(f"the span store {self.path} was opened read-only")
        if not isinstance(trace, TraceRecord):
            record = getattr(trace, "record", None)
            if not isinstance(record, TraceRecord):
                raise TypeError(f"SQLiteStore.export() takes a finished trace, got {trace!r}")
            trace = record
        self._worker.put(trace)

    __call__ = export

    def _write_batch(self, traces: list[TraceRecord]) -> None:
        prepared = self._prepare(traces)
        if not prepared:
            return
        rejected: dict[int, BaseException] = {}
        for attempt in (1, 2):
            try:
                conn = self._writer()
            except ConfigurationError as exc:
                # The file was deleted and cannot be made again (directory not writable…).
                self._lose(len(prepared), f"span store file missing and not recreated: {exc}")
                report("store", exc, reraise_in_strict=False)
                return
            try:
                rejected = self._commit_retrying(conn, prepared)
            except sqlite3.OperationalError:
                if attempt == 2 or self._file_identity() == self._write_identity:
                    raise
                continue  # the file went away under the write: again, into a new one
            if self._file_identity() == self._write_identity:
                break
            # The file was deleted (or replaced) while this batch went into it: what was
            # just committed went with it. Write the batch again, into the new file.
            if attempt == 2:
                lost = len(prepared) - len(rejected)
                self._lose(lost, "span store file deleted while being written, twice")
                return
        spans = 0
        for index, (trace_id, _, span_rows) in enumerate(prepared):
            error = rejected.get(index)
            if error is None:
                spans += len(span_rows)
            else:
                self._reject(trace_id, error)
        self.written_traces += len(prepared) - len(rejected)
        self.written_spans += spans
        self._maybe_apply_retention(conn)

    def _prepare(self, traces: list[TraceRecord]) -> list[_Prepared]:
        prepared: list[_Prepared] = []
        for trace in traces:
            try:
                trace_row = rows.trace_row(trace)
                span_rows = [rows.span_row(record) for record in trace.spans]
            except Exception as exc:  # a bug: strict mode re-raises it (the batch is lost)
                report("store", exc)
                self._lose(1, f"rows of trace {trace.trace_id} not built: {type(exc).__name__}")
                continue
            prepared.append((trace.trace_id, trace_row, span_rows))
        return prepared

    @staticmethod
    def _commit_retrying(
        conn: sqlite3.Connection, prepared: list[_Prepared]
    ) -> dict[int, BaseException]:
        try:
            return _commit(conn, prepared)
        except sqlite3.OperationalError as exc:
            # Another process held the lock for longer than busy_timeout_s: one retry.
            if not _is_busy(exc):
                raise
        return _commit(conn, prepared)

    def _lose(self, count: int, reason: str) -> None:
        if count and self._worker is not None:
            self._worker.record_loss(count, reason)

    def _reject(self, trace_id: str, error: BaseException) -> None:
        """Count one trace SQLite would not take; log the first of each kind of cause."""
        cause = f"{type(error).__name__}: {error}"
        key = f"rejected:{type(error).__qualname__}"
        if "store" not in dropped_counts():  # the first drop is logged with its reason
            self._logged.add(key)
        self._lose(1, f"trace {trace_id} rejected by SQLite ({cause})")
        self._log_once(
            key,
            "agentos_obs: store dropped trace %s, rejected by SQLite (%s); the rest of its "
            "batch was written; further rejections of this kind are counted, not logged",
            trace_id,
            cause,
        )

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(message, *args)

    # -- the file under the writer ---------------------------------------------------
    def _file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file at ``path`` now; None when there is none."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def _writer(self) -> sqlite3.Connection:
        """The write connection, to the file at ``path`` now.

        SQLite goes on writing into a file that was deleted (its data directory removed
        while the app runs), and every trace would be lost without a sign. So each batch
        checks, with one stat(), that the path still names the file written to, and opens
        a new file (created and migrated) when it does not.
        """
        identity = self._file_identity()
        conn = self._write_conn
        if identity is not None and identity == self._write_identity:
            if conn is None:
                conn = self._write_conn = self._connect()
            return conn
        self._log_once(
            "file-lost",
            "agentos_obs: the span store %s was deleted or replaced while in use; writing "
            "to a new file at that path (what the old one held is gone); further "
            "occurrences are counted in SQLiteStore.stats()['recreated'], not logged",
            self.path,
        )
        if conn is not None:
            self._write_conn = None
            conn.close()
        with self._read_lock:  # queries follow the writer to the new file
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None
        conn = self._open_and_migrate()
        self._write_conn = conn
        self._write_identity = self._file_identity()
        self.recreated += 1
        return conn

    def _maybe_apply_retention(self, conn: sqlite3.Connection) -> None:
        if self._max_age_days is None and self._max_bytes is None:
            return
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + self._retention_interval_s
        try:
            queries.retention(conn, self._max_age_days, self._max_bytes)
        except sqlite3.Error as exc:
            report("store.retention", exc, reraise_in_strict=False)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write every trace queued so far; False if that took longer than ``timeout_s``."""
        if self._worker is None:
            return True
        return self._worker.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the writer thread and close the connections (also done at exit)."""
        stopped = self._worker.close(timeout_s) if self._worker is not None else True
        with self._read_lock:
            if stopped and self._write_conn is not None:
                # Only once the writer is done with it; otherwise it is left to the thread.
                self._write_conn.close()
                self._write_conn = None
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    shutdown = close

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters of this store: traces queued, written, dropped; spans written; times
        the file was deleted while in use and made again (``recreated``)."""
        worker = self._worker
        return {
            "queued": worker.pending if worker is not None else 0,
            "written_traces": self.written_traces,
            "written_spans": self.written_spans,
            "dropped_traces": worker.dropped if worker is not None else 0,
            "recreated": self.recreated,
        }

    @property
    def schema_version(self) -> int:
        return self._query(read_version)

    # -- queries ---------------------------------------------------------------------
    def list_traces(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        status: str | SpanStatus | Iterable[str | SpanStatus] | None = None,
        model: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        min_cost: float | None = None,
        min_duration_ms: float | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        session: str | None = None,
        order_by: str = "start_time",
        descending: bool = True,
    ) -> list[dict[str, Any]]:
        """Traces matching every filter given, newest first (or by ``order_by``).

        Time bounds (``since`` inclusive, ``until`` exclusive, on the trace start) accept a
        ``datetime`` (naive = UTC), a ``timedelta`` ("that long ago") or epoch seconds
        (numbers above 1e15 are epoch ns). ``status``: one status or several ("ok",
        "error", "timeout", "cancelled"). ``model``/``agent``: traces with at least one span
        of that model / inside that agent. ``user``/``session``: exact ids. ``min_cost``
        in USD, ``min_duration_ms`` in ms. ``search``: substring of the trace name, trace
        id, user, session, or any span name or model. ``order_by``: ``start_time``,
        ``duration_ms``, ``cost_usd`` or ``total_tokens``.

        Each row: ``trace_id``, ``name``, ``service_name``, ``start_time``/``end_time``
        (epoch ns), ``duration_ms``, ``status``, ``root_span_id``, ``root_kind``,
        ``remote_parent_id``, ``user_id``, ``session_id``, ``span_count``, ``error_count``,
        ``llm_calls`` (every call, a failed one too), ``unpriced_llm_calls``,
        ``no_usage_llm_calls``, ``estimated_llm_calls``, ``cost_usd``, ``input_tokens``,
        ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
        ``reasoning_tokens``, ``total_tokens``, ``attributes`` (dict), ``models`` and
        ``agents`` (sorted lists of names).
        """
        return self._query(
            queries.list_traces,
            limit=limit,
            offset=offset,
            order_by=order_by,
            descending=descending,
            since=since,
            until=until,
            status=status,
            model=model,
            agent=agent,
            user=user,
            session=session,
            min_cost=min_cost,
            min_duration_ms=min_duration_ms,
            search=search,
        )

    def count_traces(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        status: str | SpanStatus | Iterable[str | SpanStatus] | None = None,
        model: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        min_cost: float | None = None,
        min_duration_ms: float | None = None,
        search: str | None = None,
        *,
        session: str | None = None,
    ) -> int:
        """How many traces :meth:`list_traces` would return without a limit (pagination)."""
        return self._query(
            queries.count_traces,
            since=since,
            until=until,
            status=status,
            model=model,
            agent=agent,
            user=user,
            session=session,
            min_cost=min_cost,
            min_duration_ms=min_duration_ms,
            search=search,
        )

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace (the row of :meth:`list_traces`) with ``spans``; None if unknown.

        ``trace_id`` may be a unique prefix. ``spans`` are ordered by start time; each has
        ``span_id``, ``parent_id`` (build the tree from these; a root's parent may be in
        another service), ``name``, ``kind``, ``status``, ``start_time``, ``end_time``,
        ``duration_ms``, ``latency_ms``, ``model_name``, ``provider``, the token counts,
        ``total_tokens``, ``cost_usd`` (None: unknown price), ``counts_usage`` (this span's
        usage counts towards totals), ``llm_call``, ``cost_status`` (``priced``,
        ``unpriced``, ``no_usage``, ``estimated``; None when not a call), ``agent_name``,
        ``attributes`` (dict) and ``events`` (list of ``{name, timestamp, attributes}``).
        """
        return self._query(queries.get_trace, trace_id)

    def aggregate(
        self, by: str = "model", since: TimeArg = None, until: TimeArg = None
    ) -> list[dict[str, Any]]:
        """Totals and latency percentiles per model, agent, user or UTC day, in SQL.

        Each row: ``key`` (None for spans with no model / agent / user), ``cost_usd``,
        ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
        ``reasoning_tokens``, ``total_tokens``, ``llm_calls`` (every call, failed ones
        too), ``unpriced_llm_calls``, ``no_usage_llm_calls`` (calls that reported no usage:
        their cost is unknown), ``estimated_llm_calls``, ``traces``, ``runs``, ``errors``,
        ``error_rate`` and
        ``latency_avg_ms``/``latency_max_ms``/``latency_p50_ms``/``latency_p95_ms``/
        ``latency_p99_ms`` (nearest-rank) over the runs. A run is an LLM call (including
        failed ones) for ``model``, an agent span for ``agent``, a trace for ``user`` and
        ``day``. Costs and tokens of ``agent`` go to the innermost enclosing agent. Sorted
        by cost (``day``: by date).
        """
        return self._query(queries.aggregate, by, since, until)

    def summary(self, since: TimeArg = None, until: TimeArg = None) -> dict[str, Any]:
        """Headline numbers over the traces started in the window.

        ``trace_count``, ``span_count``, ``error_count``, ``error_rate`` (traces ending in
        error or timeout), ``llm_calls``, ``unpriced_llm_calls``, ``no_usage_llm_calls``,
        ``estimated_llm_calls``, ``total_cost_usd``, the
        token totals, ``total_tokens``, ``users``, ``sessions``, ``first_start_time``,
        ``last_start_time`` and trace latency ``latency_avg_ms``/``_max_ms``/``_p50_ms``/
        ``_p95_ms``/``_p99_ms``.
        """
        return self._query(queries.summary, since, until)

    def usage_rows(self, since: TimeArg = None, until: TimeArg = None) -> list[dict[str, Any]]:
        """Every counted LLM call in the window, oldest first, for re-pricing.

        Each row: ``trace_id``, ``span_id``, ``start_time``, ``model_name``, ``provider``,
        ``input_tokens`` (includes cache tokens), ``output_tokens``, ``cache_read_tokens``,
        ``cache_write_tokens``, ``reasoning_tokens``, ``cost_usd``, ``cost_status``
        (``priced``, ``unpriced`` or ``estimated``), ``agent_name``, ``user_id``,
        ``session_id``. Calls that reported no usage have nothing to re-price and are not
        rows here; :meth:`summary` and :meth:`aggregate` count them.
        """
        return self._query(queries.usage_rows, since, until)

    def retention(
        self, max_age_days: float | None = None, max_bytes: int | None = None
    ) -> dict[str, int]:
        """Delete traces older than ``max_age_days``, then the oldest until the data takes
        at most ``max_bytes``; give the space back to the file system.

        Returns ``{"deleted_traces": n, "size_bytes": bytes used by the data}``.
        """
        if self.readonly:
            raise ConfigurationError(f"the span store {self.path} was opened read-only")
        return self._query(queries.retention, max_age_days, max_bytes)

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "readwrite"
        return f"SQLiteStore({str(self.path)!r}, {mode})"
