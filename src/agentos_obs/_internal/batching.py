"""A bounded queue drained in batches by one daemon thread, so exporters never block the app.

Used by the SQLite store, the OTLP and JSONL exporters and :class:`QueuedExporter` (users'
own exporters). The caller's side (:meth:`BatchWorker.put`) is an append under a lock; when
the queue is full the item is dropped and counted (``_guard.count_drop``), never waited
for. The worker thread writes a batch when ``batch_size`` items are waiting, when
``flush_interval_s`` has passed, or when someone calls :meth:`BatchWorker.flush`.

Failures of the batch handler are reported through ``_guard.report`` and the batch is
counted as dropped. Expected environmental failures (a locked database, an unreachable
collector) are never re-raised; any other exception is a bug, and in strict mode (the test
suite) it is re-raised from the next :meth:`flush` so it cannot hide in a background thread.
A handler that writes items one by one reports an item it could not write with
:meth:`BatchWorker.record_loss` or :meth:`BatchWorker.item_failed`: that item alone is lost.

At normal interpreter exit every live worker is flushed and closed — also when nothing was
exported before (the hook is registered when this module is imported, before any worker
exists). All workers drain at the same time, within one bound for the whole process:
``AGENTOS_OBS_EXIT_TIMEOUT_S`` seconds (default 5; 0 skips the wait). A worker still busy
at the deadline (a hung endpoint) is abandoned with its thread, which is a daemon, so the
process exits on time; what it still held is lost. A handler must not start threads or
executors on its first use: at exit, Python no longer allows that.

Forked children (pre-fork web servers) get a fresh, empty queue and start their own thread
on first use; items queued before the fork stay the parent's to write.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, Generic, TypeVar

import agentos_obs._internal.guard as _guard
from agentos_obs.errors import ConfigurationError

__all__ = [
    "DEFAULT_EXIT_TIMEOUT_S",
    "EXIT_TIMEOUT_ENV",
    "BatchWorker",
    "QueuedExporter",
    "close_all",
    "exit_timeout_s",
]

T = TypeVar("T")

DEFAULT_EXIT_TIMEOUT_S = 5.0
EXIT_TIMEOUT_ENV = "AGENTOS_OBS_EXIT_TIMEOUT_S"

_live: weakref.WeakSet[BatchWorker[object]] = weakref.WeakSet()
_live_lock = threading.Lock()
_logger = logging.getLogger("agentos_obs")


def exit_timeout_s() -> float:
    """Seconds all workers together may take to drain at interpreter exit."""
    raw = os.environ.get(EXIT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_EXIT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < math.inf:
        _logger.warning(
            "agentos_obs: %s=%r is not a number of seconds >= 0; using %s",
            EXIT_TIMEOUT_ENV,
            raw,
            DEFAULT_EXIT_TIMEOUT_S,
        )
        return DEFAULT_EXIT_TIMEOUT_S
    return value


def close_all(timeout_s: float, workers: Iterable[BatchWorker[Any]] | None = None) -> bool:
    """Flush and close every live worker (or ``workers``) within ``timeout_s`` in all; False
    if some could not drain in time (what they held is counted as dropped)."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    if workers is None:
        with _live_lock:
            workers = list(_live)
    else:
        workers = list(workers)
    for worker in workers:  # all drain at once: one hung endpoint does not starve the rest
        worker.request_flush()
    done = True
    for worker in workers:
        remaining = max(0.0, deadline - time.monotonic())
        if worker.exit_timeout_s is not None:
            remaining = min(remaining, worker.exit_timeout_s)
        try:
            done = worker.close(timeout_s=remaining, abandon=True) and done
        except Exception as exc:  # strict mode's deferred bug: report it, close the rest
            _guard.report(worker.name, exc, reraise_in_strict=False)
            done = False
    return done


def _close_all_at_exit() -> None:
    close_all(exit_timeout_s())


def _reinit_all_in_child() -> None:
    for worker in list(_live):
        worker._reset_after_fork()


# Registered at import, before any worker exists, so the first worker is flushed at exit too;
# and early, so the app's own atexit handlers (registered later, run earlier) can still end
# their traces before we drain.
atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_all_in_child)


class BatchWorker(Generic[T]):
    """Queue of items handed in batches to ``handle`` on a background thread.

    ``name`` is the component used for drop counts and failure reports. ``expected_errors``
    are exception types the handler may raise for reasons outside the library (I/O,
    network): reported and counted, never re-raised, even in strict mode.
    ``exit_timeout_s`` caps this worker's share of the exit bound (default: no own cap).
    """

    queued = True  # put() only appends to the queue: a tracer may call it directly

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        max_queue: int = 10_000,
        expected_errors: tuple[type[BaseException], ...] = (),
        exit_timeout_s: float | None = None,
        on_reset_after_fork: Callable[[], None] | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigurationError(f"{name}: batch_size must be >= 1, got {batch_size!r}")
        if float(flush_interval_s) <= 0:
            raise ConfigurationError(
                f"{name}: flush_interval_s must be > 0, got {flush_interval_s!r}"
            )
        if int(max_queue) < 1:
            raise ConfigurationError(f"{name}: max_queue must be >= 1, got {max_queue!r}")
        self.name = name
        self.exit_timeout_s = None if exit_timeout_s is None else max(0.0, float(exit_timeout_s))
        self._handle = handle
        self._batch_size = int(batch_size)
        self._flush_interval_s = float(flush_interval_s)
        self._max_queue = int(max_queue)
        self._expected_errors = expected_errors
        self._on_reset_after_fork = on_reset_after_fork
        self._init_state()
        with _live_lock:
            _live.add(self)  # type: ignore[arg-type]

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[T] = deque()
        self._accepted = 0  # items taken into the queue
        self._processed = 0  # items handed to the handler (written, failed or discarded)
        self._flush_target = 0  # while processed < this, write without waiting
        self._closed = False
        self._thread: threading.Thread | None = None
        self._no_thread = False  # a thread could not be started (interpreter exiting)
        self._deferred_error: BaseException | None = None
        self.dropped = 0  # items lost: queue full, closed, or the handler failed

    def _reset_after_fork(self) -> None:
        # The parent's thread does not exist here and its lock may have been held at fork
        # time: start clean. The parent still writes what it had queued.
        self._init_state()
        if self._on_reset_after_fork is not None:
            self._on_reset_after_fork()

    # -- caller side -----------------------------------------------------------------
    def put(self, item: T) -> bool:
        """Queue ``item``; False (and counted as dropped) when the queue is full or closed."""
        cond = self._cond
        with cond:
            closed = self._closed
            if not closed and len(self._pending) < self._max_queue:
                self._pending.append(item)
                self._accepted += 1
                waiting = len(self._pending)
                if self._thread is None and not self._no_thread:
                    self._start()
                # Wake the writer only when it has something to do: the first item starts
                # the flush-interval clock, a full batch is written at once.
                if waiting == 1 or waiting == self._batch_size:
                    cond.notify_all()
                return True
            self.dropped += 1
        _guard.count_drop(
            self.name, 1, "exporter closed" if closed else f"queue full ({self._max_queue} items)"
        )
        return False

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to the handler."""
        return len(self._pending)

    def request_flush(self) -> None:
        """Ask the thread to write everything queued so far now, without waiting for it."""
        with self._cond:
            if self._processed < self._accepted:
                self._flush_target = max(self._flush_target, self._accepted)
                self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every item queued before this call has been handled.

        Returns False on timeout. In strict mode, re-raises a bug the handler hit.
        """
        if self._no_thread:
            self._drain_here()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._accepted
            if self._processed < target:
                self._flush_target = max(self._flush_target, target)
                self._cond.notify_all()
                while self._processed < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            done = self._processed >= target
            error, self._deferred_error = self._deferred_error, None
        if error is not None:
            raise error
        return done

    def close(self, timeout_s: float = 10.0, *, abandon: bool = False) -> bool:
        """Flush, then stop the thread, within ``timeout_s`` in all. Items put afterwards are
        dropped and counted. Returns False if the queue could not be drained in time; with
        ``abandon`` (interpreter exit), what is left is then counted as dropped."""
        deadline = time.monotonic() + timeout_s
        done = False
        try:
            done = self.flush(timeout_s)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
                thread = self._thread
                left = self._accepted - self._processed
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
            if abandon and not done and left > 0:
                self.record_loss(left, f"not written within the exit bound ({EXIT_TIMEOUT_ENV})")
        return done

    @property
    def closed(self) -> bool:
        return self._closed

    # -- worker side -----------------------------------------------------------------
    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"agentos-obs-{self.name}", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Python refuses new threads while the interpreter exits (first item put by an
            # atexit handler): the queue is written by whoever flushes or closes it.
            self._no_thread = True
            return
        self._thread = thread

    def _next_batch(self) -> list[T] | None:
        """Block until a batch is due; None when closed and drained."""
        cond = self._cond
        with cond:
            while not self._pending:
                if self._closed:
                    return None
                cond.wait()
            deadline = time.monotonic() + self._flush_interval_s
            while (
                len(self._pending) < self._batch_size
                and not self._closed
                and self._processed >= self._flush_target
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                cond.wait(remaining)
            count = min(self._batch_size, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _process(self, batch: list[T]) -> None:
        cond = self._cond  # after a fork the child gets a new one and a new thread
        try:
            self._handle(batch)
        except self._expected_errors as exc:
            self.handler_failed(len(batch), exc, bug=False)
        except Exception as exc:
            self.handler_failed(len(batch), exc, bug=True)
        with cond:
            self._processed += len(batch)
            cond.notify_all()

    def _drain_here(self) -> None:
        """Write the queue on the calling thread (only when no thread could be started)."""
        while True:
            with self._cond:
                count = min(self._batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
            if not batch:
                return
            self._process(batch)

    def record_loss(
        self, count: int, reason: str, *, component: str | None = None, log: bool = True
    ) -> None:
        """Count ``count`` items the handler could not deliver (it caught the failure).

        ``component`` names the drop counter (default: the worker's name), e.g.
        ``"jsonl.unencodable"`` for an item that could not be encoded, so its reason gets its
        own log line. :attr:`dropped` counts every loss of this worker.
        """
        with self._cond:
            self.dropped += count
        _guard.count_drop(component or self.name, count, reason, log=log)

    def handler_failed(
        self, count: int, exc: BaseException, *, bug: bool = True, component: str | None = None
    ) -> None:
        """``count`` items lost because ``exc`` was raised handling them: counted, reported
        (logged once), and — for a bug, in strict mode — re-raised by the next flush."""
        name = component or self.name
        # One log line for the failure (report's); the loss is counted, not logged again.
        self.record_loss(count, f"write failed: {type(exc).__name__}", component=name, log=False)
        _guard.report(name, exc, reraise_in_strict=False)
        if bug and _guard.is_strict():
            with self._cond:
                if self._deferred_error is None:
                    self._deferred_error = exc


# -- users' own exporters -------------------------------------------------------------------
def _exporter_name(exporter: object) -> str:
    return str(getattr(exporter, "__qualname__", None) or type(exporter).__qualname__)


class QueuedExporter:
    """Run a tracer exporter (``fn(trace)``, or an object with ``export(trace)``) on its own
    background thread, behind a bounded queue, so a slow or hung exporter never blocks the
    app.

    ``export(trace)`` is an append to the queue (what the tracer calls at each trace end).
    When ``max_queue`` traces are waiting — the exporter is hung or slower than the app —
    further traces are dropped and counted under ``name`` (``dropped_counts()``, and
    :attr:`dropped`). An exception raised by the exporter loses that trace alone: counted,
    logged once, and re-raised by the next :meth:`flush` in strict mode. Like the built-in
    exporters, it is flushed at interpreter exit within ``AGENTOS_OBS_EXIT_TIMEOUT_S``.

    ``flush()`` / ``close()`` wait for the queue, then call the wrapped object's own
    ``flush``/``force_flush`` and ``close``/``shutdown`` when it has them and the queue
    drained in time.
    """

    queued = True  # export() never blocks: a tracer need not wrap it again

    def __init__(
        self,
        exporter: Callable[[Any], object] | object,
        *,
        name: str | None = None,
        max_queue: int = 1000,
        batch_size: int = 64,
        flush_interval_s: float = 0.05,
    ) -> None:
        if callable(exporter):
            fn = exporter
        elif callable(getattr(exporter, "export", None)):
            fn = exporter.export  # type: ignore[attr-defined]
        else:
            raise ConfigurationError(
                f"exporter must be callable as fn(trace) or have export(trace), got {exporter!r}"
            )
        self.exporter = exporter
        self._fn: Callable[[Any], object] = fn
        self.name = name or f"exporter:{_exporter_name(exporter)}"
        self._worker: BatchWorker[Any] = BatchWorker(
            self.name,
            self._deliver,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queue=max_queue,
        )

    def export(self, trace: Any) -> None:
        """Queue ``trace`` for the wrapped exporter (never blocks)."""
        self._worker.put(trace)

    __call__ = export

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the wrapped exporter has had every trace queued so far."""
        done = self._worker.flush(timeout_s)
        if done:
            self._call_inner(("flush", "force_flush"))
        return done

    force_flush = flush

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush, stop the thread, then close the wrapped exporter (when it drained)."""
        done = self._worker.close(timeout_s)
        if done:
            self._call_inner(("close", "shutdown"))
        return done

    shutdown = close

    @property
    def dropped(self) -> int:
        """Traces lost: queue full, closed, or the exporter raised."""
        return self._worker.dropped

    @property
    def pending(self) -> int:
        return self._worker.pending

    def _deliver(self, batch: list[Any]) -> None:
        for trace in batch:  # one failing trace must not cost the others
            try:
                self._fn(trace)
            except Exception as exc:
                self._worker.handler_failed(1, exc)

    def _call_inner(self, method_names: tuple[str, ...]) -> None:
        inner = self.exporter
        owner = getattr(inner, "__self__", None)
        if inner is self._fn and owner is not None and not isinstance(owner, ModuleType):
            inner = owner  # a bound export method: its object has the lifecycle
        for method_name in method_names:
            method = getattr(inner, method_name, None)
            if callable(method):
                try:
                    method()
                except Exception as exc:
                    _guard.report(f"{self.name}.{method_name}", exc)
                return

    def __repr__(self) -> str:
        return f"QueuedExporter({self.exporter!r}, pending={self.pending}, dropped={self.dropped})"
