"""prometheus_client's multi-process mode: values in files under ``PROMETHEUS_MULTIPROC_DIR``,
aggregated by the process that serves ``/metrics``."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry

from agentos_obs.errors import ConfigurationError

__all__ = ["GAUGE_MULTIPROCESS_MODES", "is_multiprocess", "multiprocess_registry"]

# How prometheus_client merges the processes' values of a gauge, as its documentation lists
# them (prometheus_client validates the mode again when the gauge is made).
GAUGE_MULTIPROCESS_MODES: frozenset[str] = frozenset({
    "all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
    "mostrecent", "livemostrecent",
})  # fmt: skip


def is_multiprocess() -> bool:
    """True when prometheus_client writes values to files (``PROMETHEUS_MULTIPROC_DIR``)."""
    # prometheus_client honours the deprecated lower-case name too.
    legacy = os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or legacy)


def multiprocess_registry(path: str | None = None) -> CollectorRegistry:
    """A registry aggregating every process's metric files, for the process that serves.

    Use it in the scrape side (a gunicorn master hook, a sidecar) with
    ``prometheus_client.start_http_server(port, registry=multiprocess_registry())``. Callback
    metrics (``active_traces``...) and the internal health counters live in process memory
    and are not in the files: each worker's own registry still serves them.
    """
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or not os.path.isdir(directory):
        raise ConfigurationError(
            "multi-process metrics need PROMETHEUS_MULTIPROC_DIR (or path=) to name an "
            f"existing directory, got {directory!r}"
        )
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry
