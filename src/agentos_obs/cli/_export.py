"""``export`` (stored traces to JSONL or an OTLP endpoint) and ``run -- cmd`` (zero-code
instrumentation of a child process)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

from agentos_obs.cli._common import CLIError, console
from agentos_obs.errors import ConfigurationError
from agentos_obs.store._reader import StoreReader, resolve_db_path
from agentos_obs.tracing._spans import Span, SpanEvent, SpanKind, SpanStatus, Trace

__all__ = ["BOOTSTRAP_DIR", "cmd_export", "cmd_run", "trace_from_stored"]

BOOTSTRAP_DIR = Path(__file__).parent / "_bootstrap"
_PAGE = 200


# -- stored rows back to Trace objects ---------------------------------------------------------
def _enum(enum: Any, value: Any, default: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return default


def trace_from_stored(data: dict[str, Any]) -> Trace:
    """Rebuild a finished :class:`Trace` from :meth:`SQLiteStore.get_trace`'s dict, with the
    original ids, times, statuses, usage, attributes and events — what the exporters take."""
    spans: list[Span] = []
    by_id: dict[str, Span] = {}
    for row in data.get("spans", []):
        span = Span(
            row.get("name") or "",
            _enum(SpanKind, row.get("kind"), SpanKind.CHAIN),
            span_id=row["span_id"],
            parent_id=row.get("parent_id"),
            trace_id=data["trace_id"],
            attributes=dict(row.get("attributes") or {}),
            start_time=int(row["start_time"]),
        )
        span.status = _enum(SpanStatus, row.get("status"), SpanStatus.OK)
        # Durations come from the monotonic clock; here the stored duration is the truth.
        span._start_mono = span.start_time
        span._mark_ended(span.start_time + int(float(row.get("duration_ms") or 0.0) * 1e6))
        span.model_name = row.get("model_name") or ""
        span.provider = row.get("provider")
        for field in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            setattr(span, field, int(row.get(field) or 0))
        span.cost_usd = row.get("cost_usd")
        span._shadowed = span.has_usage and not row.get("counts_usage", True)
        span.events = [
            SpanEvent(e.get("name", ""), e.get("timestamp"), dict(e.get("attributes") or {}))
            for e in row.get("events") or []
            if isinstance(e, dict)
        ]
        spans.append(span)
        by_id[span.span_id] = span
    trace = Trace(data["trace_id"], name=data.get("name") or "")
    trace.start_time = int(data["start_time"])
    trace._start_mono = trace.start_time
    trace._end_mono = trace.start_time + int(float(data.get("duration_ms") or 0.0) * 1e6)
    trace.attributes = dict(data.get("attributes") or {})
    for span in spans:
        parent = by_id.get(span.parent_id or "")
        span._trace = trace
        if parent is not None and parent is not span:
            span._parent = parent
            parent.children.append(span)
    trace.spans = spans
    trace.root_span = by_id.get(data.get("root_span_id") or "") or (spans[0] if spans else None)
    trace._root_done = True
    trace._exported = True
    return trace


# -- export ------------------------------------------------------------------------------------
def _stored_traces(reader: StoreReader, since: Any, until: Any) -> Iterator[dict[str, Any]]:
    """Every trace of the window, oldest first, a page of ids at a time."""
    offset = 0
    while True:
        page = reader.store.list_traces(
            since=since, until=until, limit=_PAGE, offset=offset, descending=False
        )
        for row in page:
            data = reader.store.get_trace(row["trace_id"])
            if data is not None:
                yield data
        if len(page) < _PAGE:
            return
        offset += _PAGE


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


class _OTLPSink:
    """One OTLPExporter per service name (the resource is per exporter)."""

    def __init__(self, endpoint: str | None) -> None:
        try:
            from agentos_obs.exporters.otlp import OTLPExporter
        except ImportError:
            raise CLIError(
                "OTLP export needs the OpenTelemetry extra: pip install 'agentos-obs[otel]'"
            ) from None
        self._factory = OTLPExporter
        self._endpoint = endpoint
        self._exporters: dict[str | None, Any] = {}

    def export(self, trace: Trace, service_name: str | None) -> None:
        exporter = self._exporters.get(service_name)
        if exporter is None:
            try:
                exporter = self._factory(endpoint=self._endpoint, service_name=service_name)
            except ConfigurationError as exc:
                raise CLIError(str(exc), exit_code=2) from None
            self._exporters[service_name] = exporter
        exporter.export(trace)

    def close(self) -> int:
        """Flush and shut down; return how many traces were not delivered."""
        lost = 0
        for exporter in self._exporters.values():
            exporter.flush()
            exporter.shutdown()
            lost += int(exporter.dropped)
        return lost


def cmd_export(args: argparse.Namespace) -> int:
    db_path = resolve_db_path(args.db)
    if args.format == "jsonl" and args.endpoint:
        raise CLIError("--endpoint is for --format otlp", exit_code=2)
    if args.format == "otlp" and args.output:
        raise CLIError("--output is for --format jsonl", exit_code=2)
    with StoreReader(db_path) as reader:
        total = reader.store.count_traces(since=args.since, until=args.until)
        if args.limit is not None:
            total = min(total, args.limit)
        sink = _OTLPSink(args.endpoint) if args.format == "otlp" else None
        target = Path(args.output) if args.output else None
        opened: Any = nullcontext(sys.stdout)
        if sink is None and target is not None:
            try:
                opened = target.open("w", encoding="utf-8")
            except OSError as exc:
                raise CLIError(f"cannot write {target}: {exc.strerror or exc}") from None
        count = spans = 0
        with opened as handle, _progress(total, f"export {args.format}") as advance:
            for data in _stored_traces(reader, args.since, args.until):
                if count >= total:
                    break
                trace = trace_from_stored(data)
                if sink is not None:
                    sink.export(trace, data.get("service_name"))
                else:
                    _write_line(handle, trace)
                count += 1
                spans += len(trace.spans)
                if advance is not None:
                    advance()
        lost = sink.close() if sink is not None else 0
    where = (
        "the OTLP endpoint"
        if sink is not None
        else (str(target) if target is not None else "standard output")
    )
    print(f"agentos-obs: exported {count} traces ({spans} spans) to {where}", file=sys.stderr)
    if lost:
        raise CLIError(f"{lost} traces could not be delivered to the OTLP endpoint")
    return 0


def _write_line(handle: IO[str], trace: Trace) -> None:
    # The same line format as exporters.jsonl.JSONLExporter: one Trace.to_dict() per line.
    handle.write(json.dumps(trace.to_dict(), default=str, ensure_ascii=False) + "\n")


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
