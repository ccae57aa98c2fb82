"""``export`` (stored traces to JSONL or an OTLP endpoint) and ``run -- cmd`` (zero-code
instrumentation of a child process).

Export reads the store back as :class:`~agentos_obs.tracing.TraceRecord` objects
(:meth:`~agentos_obs.store.StoreReader.iter_trace_records`, keyset-paged, oldest first) and
hands them to the same exporters live traces go through: ``JSONLExporter`` for a file,
``OTLPExporter`` for an endpoint. Standard output gets the same JSON lines.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from agentos_obs.cli._common import CLIError, console, json_text, terminal_safe
from agentos_obs.errors import ConfigurationError
from agentos_obs.store import StoreReader, resolve_db_path
from agentos_obs.tracing import TraceRecord

__all__ = ["BOOTSTRAP_DIR", "cmd_export", "cmd_run"]

BOOTSTRAP_DIR = Path(__file__).parent / "_bootstrap"
# Exporters queue without blocking and drop beyond their queue: wait for them to catch up
# every this many traces (below the smallest default queue, the OTLP exporter's 2048).
_FLUSH_EVERY = 256
_FLUSH_TIMEOUT_S = 60.0


@contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A progress bar on stderr (stdout may carry the JSONL), shown only on a terminal."""
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    except ImportError:  # no rich: export works, without a bar
        yield None
        return
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


class _Sink:
    """Where exported records go; ``close()`` returns how many were lost."""

    where = ""

    def export(self, record: TraceRecord) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Wait until what was handed over so far is written or sent."""

    def close(self) -> int:
        return 0


class _StdoutSink(_Sink):
    """JSON lines on standard output: one ``TraceRecord.to_dict()`` per line, the line
    format of ``JSONLExporter``."""

    where = "standard output"

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def export(self, record: TraceRecord) -> None:
        self._handle.write(json_text(record.to_dict()) + "\n")


class _JSONLSink(_Sink):
    """The JSONL exporter live traces use, on a file emptied first, never rotated."""

    def __init__(self, target: Path) -> None:
        from agentos_obs.exporters.jsonl import JSONLExporter

        self.where = str(target)
        try:
            target.write_bytes(b"")
            # The exporter's path is a template ({pid}); braces of a real name are literal.
            template = str(target).replace("{", "{{").replace("}", "}}")
            # Any: on this base the exporters' signatures still say Trace; they take records.
            self._exporter: Any = JSONLExporter(template, max_bytes=0, backup_count=0)
        except OSError as exc:
            raise CLIError(f"cannot write {target}: {exc.strerror or exc}") from None
        except ConfigurationError as exc:
            raise CLIError(f"cannot write {target}: {exc}", exit_code=2) from None

    def export(self, record: TraceRecord) -> None:
        self._exporter.export(record)

    def flush(self) -> None:
        self._exporter.flush(_FLUSH_TIMEOUT_S)

    def close(self) -> int:
        self._exporter.close(_FLUSH_TIMEOUT_S)
        return int(self._exporter.dropped)


class _OTLPSink(_Sink):
    """One OTLPExporter per service name (the resource is per exporter)."""

    where = "the OTLP endpoint"

    def __init__(self, endpoint: str | None) -> None:
        try:
            from agentos_obs.exporters.otlp import OTLPExporter
        except ImportError:
            raise CLIError(
                "OTLP export needs the OpenTelemetry extra: pip install 'agentos-obs[otel]'"
            ) from None
        self._factory: Any = OTLPExporter  # Any: see _JSONLSink
        self._endpoint = endpoint
        self._exporters: dict[str | None, Any] = {}

    def export(self, record: TraceRecord) -> None:
        service_name = record.service_name
        exporter = self._exporters.get(service_name)
        if exporter is None:
            try:
                exporter = self._factory(endpoint=self._endpoint, service_name=service_name)
            except ConfigurationError as exc:
                raise CLIError(str(exc), exit_code=2) from None
            self._exporters[service_name] = exporter
        exporter.export(record)

    def flush(self) -> None:
        for exporter in self._exporters.values():
            exporter.flush(_FLUSH_TIMEOUT_S)

    def close(self) -> int:
        """Flush and shut down; return how many traces were not delivered."""
        lost = 0
        for exporter in self._exporters.values():
            exporter.flush(_FLUSH_TIMEOUT_S)
            exporter.shutdown()
            lost += int(exporter.dropped)
        return lost


def _sink(args: argparse.Namespace) -> _Sink:
    if args.format == "otlp":
        return _OTLPSink(args.endpoint)
    if args.output:
        return _JSONLSink(Path(args.output))
    return _StdoutSink(sys.stdout)


def cmd_export(args: argparse.Namespace) -> int:
    db_path = resolve_db_path(args.db)
    if args.format == "jsonl" and args.endpoint:
        raise CLIError("--endpoint is for --format otlp", exit_code=2)
    if args.format == "otlp" and args.output:
        raise CLIError("--output is for --format jsonl", exit_code=2)
    with StoreReader(db_path) as reader:
        total = reader.count_traces(since=args.since, until=args.until)
        if args.limit is not None:
            total = min(total, args.limit)
        sink = _sink(args)
        count = spans = 0
        try:
            with _progress(total, f"export {args.format}") as advance:
                records = reader.iter_trace_records(since=args.since, until=args.until)
                for record in records:
                    if count >= total:
                        break
                    sink.export(record)
                    count += 1
                    spans += len(record.spans)
                    if count % _FLUSH_EVERY == 0:
                        sink.flush()
                    if advance is not None:
                        advance()
        finally:
            lost = sink.close()
    where = terminal_safe(sink.where)
    print(f"agentos-obs: exported {count} traces ({spans} spans) to {where}", file=sys.stderr)
    if lost:
        raise CLIError(f"{lost} traces could not be delivered to {where}")
    return 0


# -- run -------------------------------------------------------------------------------------
def child_environment(
    base: dict[str, str], db_path: Path, *, service_name: str | None, capture_content: bool
) -> dict[str, str]:
    env = dict(base)
    env["AGENTOS_OBS_AUTO_INSTRUMENT"] = "1"
    env["AGENTOS_OBS_DB"] = str(db_path)
    if service_name:
        env["OTEL_SERVICE_NAME"] = service_name
    if capture_content:
        env["AGENTOS_OBS_CAPTURE_CONTENT"] = "1"
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(BOOTSTRAP_DIR) + (os.pathsep + existing if existing else "")
    return env


def cmd_run(args: argparse.Namespace) -> int:
    """Run the command with instrumentation on; return its exit code (128+N if killed by
    signal N, 127 if not found, 126 if not executable)."""
    db_path = resolve_db_path(args.db).resolve()
    env = child_environment(
        dict(os.environ),
        db_path,
        service_name=args.service_name,
        capture_content=args.capture_content,
    )
    try:
        child = subprocess.Popen(args.argv, env=env)
    except FileNotFoundError:
        raise CLIError(f"command not found: {args.argv[0]}", exit_code=127) from None
    except PermissionError:
        raise CLIError(f"not executable: {args.argv[0]}", exit_code=126) from None

    # Ctrl-C reaches the child from the terminal itself; we wait for it to flush and exit.
    # A SIGTERM sent to us is passed on.
    def forward(signum: int, _frame: Any) -> None:
        child.send_signal(signum)

    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    print(f"agentos-obs run: traces stored in {db_path}", file=sys.stderr)
    return 128 - code if code < 0 else code
