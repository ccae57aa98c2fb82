"""Exposition of a prometheus_client registry: the text formats, and a ``/metrics`` server."""

from __future__ import annotations

import threading
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agentos_obs.errors import ConfigurationError

__all__ = ["MetricsServer", "openmetrics_text", "prometheus_text"]


def prometheus_text(registry: CollectorRegistry) -> str:
    """Prometheus text exposition format 0.0.4."""
    return generate_latest(registry).decode("utf-8")


def openmetrics_text(registry: CollectorRegistry) -> str:
    """OpenMetrics 1.0 text, which carries exemplars."""
    text: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return text.decode("utf-8")


class MetricsServer:
    """prometheus_client's ``/metrics`` server for one registry, at most one at a time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, port: int, addr: str) -> tuple[Any, int]:
        with self._lock:
            if self._server is not None:
                raise ConfigurationError(
                    f"metrics server already running on port {self._server.server_port}; "
                    "call stop() first"
                )
            try:
                server, thread = prometheus_client.start_http_server(
                    port, addr=addr, registry=self._registry
                )
            except OSError as exc:
                raise ConfigurationError(f"cannot serve metrics on {addr}:{port}: {exc}") from exc
            self._server, self._thread = server, thread
            return server, int(server.server_port)

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
