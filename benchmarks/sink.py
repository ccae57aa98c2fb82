"""A local HTTP sink on 127.0.0.1 standing in for a tracing backend (OTLP collector, Langfuse).

Accepts any request and answers 200 (207 with an empty result for Langfuse's batch
ingestion API). OTLP/HTTP protobuf trace exports are decoded so the benchmark can check the
trace trees a tool sent: ``GET /stats`` returns counts, ``GET /stats?reset=1`` also forgets.

Run: ``python benchmarks/sink.py PORT_FILE`` — binds an ephemeral port, writes it to
PORT_FILE, serves until killed. Started and stopped by ``run.py``; never reachable from
outside this machine.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_lock = threading.Lock()
# trace id -> list of (span id, parent span id)
_traces: dict[bytes, list[tuple[bytes, bytes]]] = defaultdict(list)
_requests = 0
_bytes = 0
_undecoded = 0


def _decode_spans(body: bytes) -> list[tuple[bytes, bytes, bytes]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [
        (span.trace_id, span.span_id, span.parent_span_id)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def tree_stats(traces: dict[Any, list[tuple[Any, Any]]]) -> dict[str, Any]:
    """Shape of the trace trees a tool recorded: ``{trace id: [(span id, parent id)]}``.

    A parent id that is empty/None marks a root; one that names no span of the same trace
    is a broken link; a span id seen twice in a trace is a duplicate.
    """
    roots_per_trace: dict[int, int] = defaultdict(int)
    sizes: dict[int, int] = defaultdict(int)
    broken = duplicated = 0
    for members in traces.values():
        ids = [s for s, _ in members]
        duplicated += len(ids) - len(set(ids))
        known = set(ids)
        roots_per_trace[sum(1 for _, p in members if not p)] += 1
        sizes[len(members)] += 1
        broken += sum(1 for _, p in members if p and p not in known)
    return {
        "traces": len(traces),
        "spans": sum(len(v) for v in traces.values()),
        "spans_with_missing_parent": broken,
        "duplicated_spans": duplicated,
        "traces_by_root_count": {str(k): v for k, v in sorted(roots_per_trace.items())},
        "traces_by_size": {str(k): v for k, v in sorted(sizes.items())},
    }


def _stats(reset: bool) -> dict[str, Any]:
    global _requests, _bytes, _undecoded
    with _lock:
        out = {
            "requests": _requests,
            "bytes": _bytes,
            "undecoded_requests": _undecoded,
            **tree_stats(_traces),
        }
        if reset:
            _traces.clear()
            _requests = _bytes = _undecoded = 0
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/stats"):
            body = json.dumps(_stats("reset=1" in self.path)).encode()
            self._reply(200, body, "application/json")
        else:
            self._reply(200, b"{}", "application/json")

    def do_POST(self) -> None:
        global _requests, _bytes, _undecoded
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        with _lock:
            _requests += 1
            _bytes += len(body)
        if self.path.endswith("/v1/traces"):
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                spans = _decode_spans(body)
            except Exception:
                with _lock:
                    _undecoded += 1
            else:
                with _lock:
                    for trace_id, span_id, parent_id in spans:
                        _traces[trace_id].append((span_id, parent_id))
            # An empty ExportTraceServiceResponse: full success.
            self._reply(200, b"", "application/x-protobuf")
        elif "/ingestion" in self.path:
            self._reply(207, b'{"successes": [], "errors": []}', "application/json")
        else:
            self._reply(200, b"{}", "application/json")

    do_PUT = do_POST


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    Path(sys.argv[1]).write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
