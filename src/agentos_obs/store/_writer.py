"""The embedded span store: spans in one SQLite file as they end, queried by the CLI and UI.

``SQLiteStore(path)`` is both a span processor and a tracer exporter; attach it with
``store.attach(tracer)`` (``tracer.add_span_processor(store)`` and
``tracer.add_exporter(store)``). Each span is queued when it ends (``on_end``), a trace's
root when it starts (``on_start``, so a trace shows as ``running`` at once), and the
trace's record when it ends (``export``, which settles it: status, name, duration, and its
rollups). Used as an exporter only, it writes whole traces when they end, as before.

The caller's cost is one append to a bounded queue; a background thread writes batches in
one transaction each. When the queue is full, items are dropped and counted
(``_guard.dropped_counts()["store"]``, ``stats()``), never waited for.

A trace that never ends — its process was killed, or it hangs — becomes ``incomplete``:
at the next start of a store on the file (for writers whose process is gone), at
:meth:`SQLiteStore.close`, or when no span of it has ended for ``incomplete_after_s``.
Its spans and their cost stay, and are counted in the rollups then.

Durability and sharing:

* WAL journal with ``synchronous=NORMAL``: a committed batch survives the process being
  killed (even with SIGKILL); what is lost is at most what ended within the last
  ``flush_interval_s`` (still queued).
* Several processes (web workers) may write the same file: each has its own connection and
  writes short transactions; SQLite serialises them (``busy_timeout_s``).
* A forked child (pre-fork servers) gets its own connections and writer thread.
* A locked, read-only or failing database never reaches the app: the batch is counted as
  dropped and the failure logged once.
* A batch never fails for one bad trace: when SQLite rejects a value, the batch is written
  again trace by trace and only the rejected trace's items are dropped, counted and the
  cause logged once.
* The file deleted while the app runs (its data directory removed): the next batch sees
  the path no longer names the file it writes to, makes a new one, says so once in the
  log and counts it in ``stats()["recreated"]``; a batch written while the file went away
  is written again into the new one.
* Retention (``max_age_days``, ``max_bytes``) runs on the writer thread in slices of about
  ``retention_slice_s`` between batches, so it never holds the app's spans back, and gives
  the space back to the file system (``PRAGMA incremental_vacuum``).

Queries read what has been written (see :mod:`agentos_obs.store._api`); call
:meth:`~SQLiteStore.flush` first to include what is still queued. Each thread queries on
a connection of its own, so concurrent readers do not wait for each other.
``SQLiteStore.open_readonly(path)`` opens a file for reading only (dashboards).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import agentos_obs.store._ingest as ingest
from agentos_obs._internal.batching import BatchWorker
from agentos_obs._internal.guard import dropped_counts, report
from agentos_obs.errors import ConfigurationError
from agentos_obs.store import _retention
from agentos_obs.store._api import StoreQueries
from agentos_obs.store._rollups import register_functions
from agentos_obs.store._schema import SCHEMA_VERSION, apply_migrations, read_version
from agentos_obs.tracing import Span, SpanRecord, TraceRecord

__all__ = ["SQLiteStore", "default_db_path"]

_APP_DIR = "agentos-obs"
_DB_NAME = "traces.db"
_TWO64 = float(1 << 64)

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


# What SQLite (or its Python binding) raises for a value it will not store: the data's
# fault, so only that trace is dropped. Anything else from the batch is a bug of ours.
_REJECTED = (sqlite3.Error, OverflowError, UnicodeError)


def _commit(
    conn: sqlite3.Connection, batch: ingest.Batch, groups: list[ingest.Group]
) -> dict[int, BaseException]:
    """Write ``groups`` in one transaction; return the groups SQLite rejected, by index.

    The common case is one pass over the whole batch. When a value is rejected (an integer
    beyond int64, text that is not UTF-8, a constraint), that attempt is rolled back and the
    groups are written again one by one under savepoints, still in one transaction: only
    those SQLite rejects are left out. An OperationalError (a lock, a full disk, a read-only
    file, I/O) is about the database, not the data: it is raised, and the batch is lost.
    """
    conn.execute("BEGIN IMMEDIATE")
    rejected: dict[int, BaseException] = {}
    try:
        try:
            batch.write(conn, groups)
        except sqlite3.OperationalError:
            raise
        except _REJECTED:
            conn.execute("ROLLBACK")
            batch.forget(groups)
            batch.reset_counts()
            conn.execute("BEGIN IMMEDIATE")
            rejected = _commit_one_by_one(conn, batch, groups)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        batch.forget(groups)
        raise
    batch.done([g for i, g in enumerate(groups) if i not in rejected])
    return rejected


def _commit_one_by_one(
    conn: sqlite3.Connection, batch: ingest.Batch, groups: list[ingest.Group]
) -> dict[int, BaseException]:
    rejected: dict[int, BaseException] = {}
    for index, group in enumerate(groups):
        conn.execute("SAVEPOINT one_trace")
        written, ended = batch.spans_written, batch.traces_ended
        try:
            batch.write(conn, [group])
        except sqlite3.OperationalError:
            raise
        except _REJECTED as exc:
            conn.execute("ROLLBACK TO one_trace")
            batch.forget([group])
            batch.spans_written, batch.traces_ended = written, ended
            rejected[index] = exc
        conn.execute("RELEASE one_trace")
    return rejected


class SQLiteStore(StoreQueries):
    """Spans and traces in a SQLite file; a span processor and tracer exporter with a
    query API.

    Args:
        path: the database file (created with its directory); ``None``:
            :func:`default_db_path`.
        batch_size: items (spans, trace ends) written per transaction at most.
        flush_interval_s: longest a queued item waits before being written.
        max_queue: items waiting at most; more are dropped and counted.
        readonly: open an existing store for queries only (no writer thread).
        busy_timeout_s: how long a write waits for another process's lock.
        max_age_days, max_bytes: retention applied by the writer every
            ``retention_interval_s`` (see :meth:`retention`).
        incomplete_after_s: a running trace none of whose spans ended for this long is
            declared ``incomplete``.
        cache_mb: SQLite page cache of each connection, in MiB.
    """

    queued = True  # export() only queues for the writer thread: a tracer calls it directly

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 8192,
        flush_interval_s: float = 0.5,
        max_queue: int = 100_000,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        max_age_days: float | None = None,
        max_bytes: int | None = None,
        retention_interval_s: float = 3600.0,
        retention_slice_s: float = 0.1,
        incomplete_after_s: float = 3600.0,
        cache_mb: int = 64,
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
        for name, value in (
            ("busy_timeout_s", busy_timeout_s),
            ("max_age_days", max_age_days),
            ("max_bytes", max_bytes),
            ("incomplete_after_s", incomplete_after_s),
        ):
            if value is not None and value < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {value!r}")
        self.path = resolved
        self.readonly = bool(readonly)
        self._busy_timeout_s = float(busy_timeout_s)
        self._cache_kib = max(1, int(cache_mb)) * 1024
        self._max_age_days = max_age_days
        self._max_bytes = max_bytes
        self._retention_interval_s = float(retention_interval_s)
        self._retention_slice_s = float(retention_slice_s)
        self._next_retention = 0.0
        self._pruning: _retention.Pruning | None = None
        self._incomplete_after_s = float(incomplete_after_s)
        self._next_sweep = 0.0
        self._sampling_ratio = 1.0
        self._local = threading.local()
        self._conns_lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._generation = 0  # bumped when the file is made again: readers reconnect
        self._write_conn: sqlite3.Connection | None = None
        self._writer_id: int | None = None
        self._live = ingest.LiveTraces()
        self.written_traces = 0
        self.written_spans = 0
        self.dropped_traces = 0
        self.dropped_spans = 0
        self.marked_incomplete = 0
        self.pruned_traces = 0
        self.recreated = 0  # times the file was deleted under the writer and made again
        self._logged: set[str] = set()
        if self.readonly:
            self._close_quietly(self._open_readonly())
        else:
            conn = self._open_and_migrate()
            try:
                self._recover_dead_writers(conn)
            finally:
                conn.close()
        self._write_identity = self._file_identity()
        self._worker: BatchWorker[ingest.Item] | None = None
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
            check_same_thread=False,  # owned by one thread (or guarded by our locks)
        )
        conn.execute(f"PRAGMA cache_size = -{self._cache_kib}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if not readonly:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: safe against process crashes
            # Checkpoint every ~40 MB of WAL, not 4 MB: a page written by many batches (an
            # index's hot page, a rollup row) is copied into the file once per checkpoint.
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            register_functions(conn)
        return conn

    @staticmethod
    def _close_quietly(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()

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
        with self._conns_lock:
            _inherited_connections.extend(self._conns)
            self._conns = []
        if self._write_conn is not None:
            _inherited_connections.append(self._write_conn)
        self._write_conn = None
        self._writer_id = None  # the child is another writer process
        self._local = threading.local()
        self._conns_lock = threading.Lock()
        self._live = ingest.LiveTraces()

    def _reader(self) -> sqlite3.Connection:
        """This thread's query connection."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "generation", -1) == self._generation:
            return conn
        if conn is not None:
            self._drop_connection(conn)
        conn = self._connect(readonly=self.readonly)
        local.conn = conn
        local.generation = self._generation
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _drop_connection(self, conn: sqlite3.Connection) -> None:
        with self._conns_lock:
            if conn in self._conns:
                self._conns.remove(conn)
        self._close_quietly(conn)

    def _query(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self._reader(), *args, **kwargs)

    # -- the caller's side -----------------------------------------------------------
    def attach(self, tracer: Any) -> None:
        """Write ``tracer``'s spans as they end and settle its traces when they end."""
        tracer.add_span_processor(self)
        tracer.add_exporter(self)

    def detach(self, tracer: Any) -> None:
        tracer.remove_span_processor(self)
        tracer.remove_exporter(self)

    def _require_writer(self) -> BatchWorker[ingest.Item]:
        if self._worker is None:
            raise ConfigurationError(f"the span store {self.path} was opened read-only")
        return self._worker

    def on_start(self, span: Span) -> None:
        """A span started: when it is a trace's root, the trace shows as running."""
        trace = span.trace
        if trace is None or trace.root_span is not span:
            return
        tracer = span.tracer
        if tracer is not None:
            self._sampling_ratio = float(tracer.config.sampling_ratio)
        if not trace.sampled:
            return
        if not self._require_writer().put(
            ingest.Started(trace.trace_id, trace.name, span.start_time, trace.remote_parent_id)
        ):
            self.dropped_traces += 1

    def on_end(self, record: SpanRecord) -> None:
        """A span ended: queue its record (the tracer calls this; never blocks)."""
        worker = self._require_writer()
        ratio = self._sampling_ratio
        if ratio < 1.0 and int(record.trace_id[16:], 16) >= ratio * _TWO64:
            return  # the tracer's own rule: this trace is not sampled, not exported
        if not worker.put(record):
            self.dropped_spans += 1

    def export(self, trace: TraceRecord) -> None:
        """Queue a finished trace's record: it settles the trace (the tracer calls this;
        never blocks). Spans not already written live are written with it.

        A live :class:`~agentos_obs.tracing.Trace` that has ended is accepted too (its
        ``record`` is queued).
        """
        worker = self._require_writer()
        if not isinstance(trace, TraceRecord):
            record = getattr(trace, "record", None)
            if not isinstance(record, TraceRecord):
                raise TypeError(f"SQLiteStore.export() takes a finished trace, got {trace!r}")
            trace = record
        if not worker.put(trace):
            self.dropped_traces += 1

    __call__ = export

    # -- the writer thread -----------------------------------------------------------
    def _write_batch(self, items: list[ingest.Item]) -> None:
        try:
            self._write_items(items)
        except (sqlite3.Error, OSError) as exc:
            self._lose(items, f"write failed: {type(exc).__name__}")
            report("store", exc, reraise_in_strict=False)
        except Exception:
            self._count_kinds(items)  # the worker counts and reports the loss of the batch
            raise
        self._after_batch()

    def _write_items(self, items: list[ingest.Item]) -> None:
        try:
            groups = ingest.group_items(items)
        except Exception as exc:  # a bug: strict mode re-raises it (the batch is lost)
            report("store", exc)
            self._lose(items, f"batch not grouped: {type(exc).__name__}")
            return
        for attempt in (1, 2):
            try:
                conn = self._writer()
            except ConfigurationError as exc:
                # The file was deleted and cannot be made again (directory not writable…).
                self._lose(items, f"span store file missing and not recreated: {exc}")
                report("store", exc, reraise_in_strict=False)
                return
            batch = ingest.Batch(self._live, self._writer_id)
            try:
                rejected = self._commit_retrying(conn, batch, groups)
            except sqlite3.OperationalError:
                if attempt == 2 or self._file_identity() == self._write_identity:
                    raise
                continue  # the file went away under the write: again, into a new one
            if self._file_identity() == self._write_identity:
                break
            # The file was deleted (or replaced) while this batch went into it: what was
            # just committed went with it. Write the batch again, into the new file.
            if attempt == 2:
                self._lose(items, "span store file deleted while being written, twice")
                return
        for index, error in rejected.items():
            self._reject(groups[index], error)
        if batch.overflow:
            self._lose_count(batch.overflow, "spans beyond 2**24 in one trace not stored", 0)
        self.written_traces += batch.traces_ended
        self.written_spans += batch.spans_written

    def _commit_retrying(
        self, conn: sqlite3.Connection, batch: ingest.Batch, groups: list[ingest.Group]
    ) -> dict[int, BaseException]:
        if self._writer_id is None:
            self._register_writer(conn)
            batch.writer_id = self._writer_id
        try:
            return _commit(conn, batch, groups)
        except sqlite3.OperationalError as exc:
            # Another process held the lock for longer than busy_timeout_s: one retry.
            if not _is_busy(exc):
                raise
        return _commit(conn, batch, groups)

    def _after_batch(self) -> None:
        conn = self._write_conn
        if conn is None:
            return
        try:
            self._maybe_sweep(conn)
            self._maybe_apply_retention(conn)
        except sqlite3.Error as exc:
            report("store.maintenance", exc, reraise_in_strict=False)

    # -- losses ----------------------------------------------------------------------
    def _count_kinds(self, items: list[ingest.Item]) -> tuple[int, int]:
        spans = sum(1 for item in items if isinstance(item, SpanRecord))
        traces = len(items) - spans
        self.dropped_spans += spans
        self.dropped_traces += traces
        return spans, traces

    def _lose(self, items: list[ingest.Item], reason: str) -> None:
        self._count_kinds(items)
        if items and self._worker is not None:
            self._worker.record_loss(len(items), reason)

    def _lose_count(self, spans: int, reason: str, traces: int) -> None:
        self.dropped_spans += spans
        self.dropped_traces += traces
        if self._worker is not None:
            self._worker.record_loss(spans + traces, reason)

    def _reject(self, group: ingest.Group, error: BaseException) -> None:
        """Count one trace's items SQLite would not take; log the first of each cause."""
        cause = f"{type(error).__name__}: {error}"
        key = f"rejected:{type(error).__qualname__}"
        if "store" not in dropped_counts():  # the first drop is logged with its reason
            self._logged.add(key)
        self._lose_count(
            len(group.spans),
            f"trace {group.trace_id} rejected by SQLite ({cause})",
            len(group.ends) + (group.started is not None),
        )
        self._log_once(
            key,
            "agentos_obs: store dropped trace %s, rejected by SQLite (%s); the rest of its "
            "batch was written; further rejections of this kind are counted, not logged",
            group.trace_id,
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
        self._generation += 1  # queries follow the writer to the new file
        self._live.clear()  # what it wrote live is gone with the old file
        self._writer_id = None
        conn = self._open_and_migrate()
        self._write_conn = conn
        self._write_identity = self._file_identity()
        self.recreated += 1
        return conn

    def _register_writer(self, conn: sqlite3.Connection) -> None:
        cursor = conn.execute(
            "INSERT INTO writers (pid, host, started_at) VALUES (?, ?, ?)",
            (os.getpid(), socket.gethostname(), time.time_ns()),
        )
        self._writer_id = cursor.lastrowid

    # -- running traces that will never end ------------------------------------------
    def _recover_dead_writers(self, conn: sqlite3.Connection) -> None:
        """At the start of a store: the running traces of writers (on this host) whose
        process is gone, or whose writer is unknown, become incomplete. Nothing is written
        when there are none."""
        host = socket.gethostname()
        writers = conn.execute("SELECT writer_id, pid, host FROM writers").fetchall()
        dead = [
            w for w, pid, h in writers if h == host and pid != os.getpid() and not _pid_alive(pid)
        ]
        alive = [w for w, _, _ in writers if w not in dead]
        where = "writer_id IS NULL OR writer_id NOT IN (SELECT value FROM json_each(?))"
        params = [json.dumps(alive)]
        orphans = conn.execute(
            f"SELECT 1 FROM traces WHERE status = 'running' AND ({where}) LIMIT 1", params
        ).fetchone()
        if orphans is None and not dead:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                marked = ingest.mark_incomplete(conn, where, params)
                conn.executemany("DELETE FROM writers WHERE writer_id = ?", [(w,) for w in dead])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # a read-only file: the traces stay as they are
            report("store.recover", exc, reraise_in_strict=False)
            return
        self.marked_incomplete += len(marked)

    def _maybe_sweep(self, conn: sqlite3.Connection) -> None:
        """Declare incomplete the running traces none of whose spans ended for
        ``incomplete_after_s`` (checked at most every tenth of that, and every minute)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(60.0, max(0.01, self._incomplete_after_s / 10))
        cutoff = time.time_ns() - int(self._incomplete_after_s * 1e9)
        self._mark(conn, "COALESCE(updated_at, end_time, start_time) < ?", [cutoff])

    def _mark(self, conn: sqlite3.Connection, where: str, params: list[Any]) -> None:
        if (
            conn.execute(
                f"SELECT 1 FROM traces WHERE status = 'running' AND ({where}) LIMIT 1", params
            ).fetchone()
            is None
        ):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            marked = ingest.mark_incomplete(conn, where, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.marked_incomplete += len(marked)

    # -- retention -------------------------------------------------------------------
    def _maybe_apply_retention(self, conn: sqlite3.Connection) -> None:
        if self._max_age_days is None and self._max_bytes is None:
            return
        now = time.monotonic()
        if self._pruning is None and now >= self._next_retention:
            self._next_retention = now + self._retention_interval_s
            self._pruning = _retention.Pruning(self._max_age_days, self._max_bytes)
        pruning = self._pruning
        if pruning is None:
            return
        done = pruning.run(conn, deadline=now + self._retention_slice_s)
        self.pruned_traces += pruning.take_deleted()
        if done:
            self._pruning = None

    def retention(
        self, max_age_days: float | None = None, max_bytes: int | None = None
    ) -> dict[str, int]:
        """Delete traces older than ``max_age_days``, then the oldest until the data takes
        at most ``max_bytes``; give the space back to the file system.

        Runs here, in chunks of short transactions (the writer thread's batches go on in
        between). Returns ``{"deleted_traces": n, "deleted_spans": n, "size_bytes": bytes
        used by the data, "file_bytes": size of the file}``.
        """
        if self.readonly:
            raise ConfigurationError(f"the span store {self.path} was opened read-only")
        pruning = _retention.Pruning(max_age_days, max_bytes)
        conn = self._reader()
        pruning.run(conn, deadline=None)
        self.pruned_traces += pruning.deleted_traces
        return pruning.result(conn)

    def vacuum(self) -> dict[str, int]:
        """Rewrite the file compactly (``VACUUM``), switching a file made by an older
        release to incremental auto-vacuum so that retention gives space back from then
        on. Takes the write lock for as long as it runs: an explicit maintenance step."""
        if self.readonly:
            raise ConfigurationError(f"the span store {self.path} was opened read-only")
        conn = self._reader()
        before = os.path.getsize(self.path)
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"before_bytes": before, "after_bytes": os.path.getsize(self.path)}

    # -- lifecycle -------------------------------------------------------------------
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything queued so far; False if that took longer than ``timeout_s``."""
        if self._worker is None:
            return True
        return self._worker.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the writer thread, declare the traces still running here
        incomplete, and close the connections (the flush is also done at exit)."""
        stopped = self._worker.close(timeout_s) if self._worker is not None else True
        conn = self._write_conn
        if stopped and conn is not None:
            # Only once the writer is done with it; otherwise it is left to the thread.
            if self._writer_id is not None:
                try:
                    self._mark(conn, "writer_id = ?", [self._writer_id])
                    conn.execute("DELETE FROM writers WHERE writer_id = ?", (self._writer_id,))
                except sqlite3.Error as exc:
                    report("store.close", exc, reraise_in_strict=False)
            self._write_conn = None
            self._close_quietly(conn)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for reader in conns:
            self._close_quietly(reader)
        self._local = threading.local()

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
        """Counters of this store: items queued; traces ended and written, spans written;
        traces and spans dropped; traces declared incomplete here; traces pruned by
        retention; times the file was deleted while in use and made again."""
        worker = self._worker
        return {
            "queued": worker.pending if worker is not None else 0,
            "written_traces": self.written_traces,
            "written_spans": self.written_spans,
            "dropped_traces": self.dropped_traces,
            "dropped_spans": self.dropped_spans,
            "marked_incomplete": self.marked_incomplete,
            "pruned_traces": self.pruned_traces,
            "live_traces": len(self._live),
            "recreated": self.recreated,
        }

    @property
    def schema_version(self) -> int:
        return int(self._query(read_version))

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "readwrite"
        return f"SQLiteStore({str(self.path)!r}, {mode})"
