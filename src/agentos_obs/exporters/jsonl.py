"""Traces as JSON lines: one ``TraceRecord.to_dict()`` per line, with size-based rotation.

The file is written by a background thread in batches (one ``write`` system call per
batch, unbuffered), so the app never waits on the disk and a killed process leaves whole
lines. When the file would grow past ``max_bytes`` it is rotated like ``logging``'s
``RotatingFileHandler``: ``traces.jsonl`` -> ``traces.jsonl.1`` -> ... ->
``traces.jsonl.<backup_count>`` (the oldest is deleted).

Each trace is encoded on its own, by the one serialiser
(:func:`agentos_obs._internal.jsonsafe.dumps`: strict JSON, valid UTF-8): a trace that still
cannot be encoded is dropped alone and counted (``dropped_counts()["jsonl.unencodable"]``,
one log line naming the reason); the others of its batch are written.

Several processes must not share one file (rotation would race): put ``{pid}`` in the path
(``traces-{pid}.jsonl``) to give each process its own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO

from agentos_obs._internal.batching import BatchWorker
from agentos_obs._internal.jsonsafe import dumps
from agentos_obs.errors import ConfigurationError
from agentos_obs.exporters._input import finished_record, unencodable
from agentos_obs.tracing import Trace, TraceRecord

__all__ = ["JSONLExporter", "encode_line"]


def _write_all(handle: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:  # an unbuffered write may be short (signal, nearly full disk)
        written = handle.write(view)
        if not written:
            raise OSError("no progress writing the JSONL file")
        view = view[written:]


def encode_line(trace: TraceRecord) -> bytes:
    """One JSONL line of ``trace`` (raises only for a record that cannot be read)."""
    return dumps(trace.to_dict()).encode("utf-8") + b"\n"


class JSONLExporter:
    """Append every finished trace to a JSON-lines file (a tracer exporter).

    Args:
        path: the file; ``{pid}`` is replaced by the process id. Its directory is created.
        max_bytes: rotate before the file would exceed this size (0: never rotate).
        backup_count: rotated files kept (0: the file is truncated instead).
        batch_size, flush_interval_s, max_queue: as for the SQLite store; traces beyond
            ``max_queue`` waiting are dropped and counted (``dropped_counts()["jsonl"]``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        backup_count: int = 5,
        batch_size: int = 128,
        flush_interval_s: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        if int(max_bytes) < 0:
            raise ConfigurationError(f"max_bytes must be >= 0, got {max_bytes!r}")
        if int(backup_count) < 0:
            raise ConfigurationError(f"backup_count must be >= 0, got {backup_count!r}")
        self._template = str(Path(path).expanduser())
        try:
            self._template.format(pid=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"JSONL path may only contain the {{pid}} placeholder, got {path!r}"
            ) from exc
        self.path = Path(self._template.format(pid=os.getpid()))
        if self.path.is_dir():
            raise ConfigurationError(f"JSONL path {self.path} is a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create {self.path.parent}: {exc}") from exc
        self.max_bytes = int(max_bytes)
        self.backup_count = int(backup_count)
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._worker: BatchWorker[TraceRecord] = BatchWorker(
            "jsonl",
            self._write_batch,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queue=max_queue,
            expected_errors=(OSError,),
            on_reset_after_fork=self._reset_after_fork,
        )

    queued = True  # export() never blocks: a tracer need not wrap it in a QueuedExporter

    def export(self, trace: TraceRecord | Trace) -> None:
        """Queue a finished trace (the tracer calls this with its record; never blocks).

        A live ``Trace`` is exported through its sealed record; anything else is dropped
        and counted under ``jsonl.unencodable``."""
        record = finished_record(trace, "jsonl")
        if record is not None:
            self._worker.put(record)

    __call__ = export

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything queued so far; False if not done within ``timeout_s``."""
        return self._worker.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the writer thread and close the file."""
        self._worker.close(timeout_s)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    shutdown = close

    @property
    def dropped(self) -> int:
        return self._worker.dropped

    def _reset_after_fork(self) -> None:
        # The child writes its own file when the path has {pid}; never through the parent's
        # handle (the file is unbuffered, so nothing of the parent's is pending in it).
        self._lock = threading.Lock()
        self._file = None
        self.path = Path(self._template.format(pid=os.getpid()))

    def _open(self) -> BinaryIO:
        handle: BinaryIO = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        self._size = os.fstat(handle.fileno()).st_size
        self._file = handle
        return handle

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.backup_count == 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backup_count - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                os.replace(source, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def _write_batch(self, traces: list[TraceRecord]) -> None:
        lines = []
        for trace in traces:  # encoded one by one: a bad trace costs only itself
            try:
                lines.append(encode_line(trace))
            except Exception as exc:
                self._worker.record_loss(1, unencodable(exc), component="jsonl.unencodable")
        if not lines:
            return
        with self._lock:
            chunk: list[bytes] = []
            chunk_size = 0
            handle = self._file if self._file is not None else self._open()
            for line in lines:
                over = self.max_bytes and self._size + chunk_size + len(line) > self.max_bytes
                if over and self._size + chunk_size > 0:
                    if chunk:
                        _write_all(handle, b"".join(chunk))
                        chunk, chunk_size = [], 0
                    self._rotate()
                    handle = self._open()
                chunk.append(line)
                chunk_size += len(line)
            if chunk:
                _write_all(handle, b"".join(chunk))
            self._size += chunk_size
