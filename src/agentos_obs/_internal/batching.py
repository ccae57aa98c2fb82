"""A bounded queue drained in batches by one daemon thread, so exporters never block the app.

Used by the SQLite store, the OTLP exporter and the JSONL exporter. The caller's side
(:meth:`BatchWorker.put`) is an append under a lock; when the queue is full the item is
dropped and counted (``_guard.count_drop``), never waited for. The worker thread writes a
batch when ``batch_size`` items are waiting, when ``flush_interval_s`` has passed, or when
someone calls :meth:`BatchWorker.flush`.

Failures of the batch handler are reported through ``_guard.report`` and the batch is
counted as dropped. Expected environmental failures (a locked database, an unreachable
collector) are never re-raised; any other exception is a bug, and in strict mode (the test
suite) it is re-raised from the next :meth:`flush` so it cannot hide in a background thread.

Forked children (pre-fork web servers) get a fresh, empty queue and start their own thread
on first use; items queued before the fork stay the parent's to write.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import agentos_obs._internal.guard as _guard
from agentos_obs.errors import ConfigurationError

__all__ = ["BatchWorker"]

T = TypeVar("T")

_live: weakref.WeakSet[BatchWorker[object]] = weakref.WeakSet()
_live_lock = threading.Lock()


def _close_all_at_exit() -> None:
    with _live_lock:
        workers = list(_live)
    for worker in workers:
        worker.close(timeout_s=worker.exit_timeout_s)


def _reinit_all_in_child() -> None:
    for worker in list(_live):
        worker._reset_after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_all_in_child)


class BatchWorker(Generic[T]):
    """Queue of items handed in batches to ``handle`` on a background thread.

    ``name`` is the component used for drop counts and failure reports. ``expected_errors``
    are exception types the handler may raise for reasons outside the library (I/O,
    network): reported and counted, never re-raised, even in strict mode.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[list[T]], None],
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        max_queue: int = 10_000,
        expected_errors: tuple[type[BaseException], ...] = (),
        exit_timeout_s: float = 5.0,
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
        self.exit_timeout_s = float(exit_timeout_s)
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
                if self._thread is None:
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

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every item queued before this call has been handled.

        Returns False on timeout. In strict mode, re-raises a bug the handler hit.
        """
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

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush, then stop the thread, within ``timeout_s`` in all. Items put afterwards are
        dropped and counted. Returns False if the queue could not be drained in time."""
        deadline = time.monotonic() + timeout_s
        try:
            done = self.flush(timeout_s)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
                thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return done

    @property
    def closed(self) -> bool:
        return self._closed

    # -- worker side -----------------------------------------------------------------
    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"agentos-obs-{self.name}", daemon=True)
        self._thread = thread
        thread.start()

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
        cond = self._cond  # after a fork the child gets a new one and a new thread
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._handle(batch)
            except self._expected_errors as exc:
                self._lost(batch, exc, bug=False)
            except Exception as exc:
                self._lost(batch, exc, bug=True)
            with cond:
                self._processed += len(batch)
                cond.notify_all()

    def record_loss(self, count: int, reason: str, *, component: str | None = None) -> None:
        """Count ``count`` items the handler could not deliver (it caught the failure).

        ``component`` names the drop counter (default: the worker's name), e.g.
        ``"jsonl.unencodable"`` for an item that could not be encoded, so its reason gets its
        own log line. :attr:`dropped` counts every loss of this worker.
        """
        with self._cond:
            self.dropped += count
        _guard.count_drop(component or self.name, count, reason)

    def _lost(self, batch: list[T], exc: BaseException, *, bug: bool) -> None:
        self.record_loss(len(batch), f"write failed: {type(exc).__name__}")
        _guard.report(self.name, exc, reraise_in_strict=False)
        if bug and _guard.is_strict():
            with self._cond:
                if self._deferred_error is None:
                    self._deferred_error = exc
