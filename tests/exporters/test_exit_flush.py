"""Queued exporters flush at normal interpreter exit, the first time too, within a bound.

Each test runs a real script in a subprocess that records spans and simply ends (no flush,
no shutdown), then checks what arrived: at a real OTLP receiver, in a JSONL file, in a
SQLite store, through a user's exporter behind a QueuedExporter.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agentos_obs._internal.batching import DEFAULT_EXIT_TIMEOUT_S, EXIT_TIMEOUT_ENV

SRC = str(Path(__file__).resolve().parents[2] / "src")

RECORD_TEN = """
from agentos_obs.tracing import SpanKind, Tracer
tracer = Tracer("exit-svc")
tracer.add_exporter(exporter)
for i in range(10):
    with tracer.start_span(f"span-{i}", SpanKind.CHAIN):
        pass
"""


def run_script(setup: str, *, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``setup`` + recording 10 spans in a fresh interpreter; (seconds, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOS"))}
    full_env["PYTHONPATH"] = SRC
    full_env.update(env or {})
    # The app configures logging, so the library's one warning reaches stderr (a library's
    # logger alone has only a NullHandler).
    code = "import logging\nlogging.basicConfig()\n" + textwrap.dedent(setup) + RECORD_TEN
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full_env
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return elapsed, result.stderr


def test_otlp_delivers_everything_at_exit_the_first_time() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from otlp_receiver import OTLPReceiver

    with OTLPReceiver() as receiver:
        # A long flush interval: nothing is sent before the script ends.
        run_script(
            f"""
            from agentos_obs.exporters.otlp import OTLPExporter
            exporter = OTLPExporter({receiver.endpoint!r}, flush_interval_s=60)
            """
        )
        assert receiver.wait_for_spans(10, timeout_s=5)
        assert sorted(s.name for s in receiver.spans) == sorted(f"span-{i}" for i in range(10))
        assert {s.resource["service.name"] for s in receiver.spans} == {"exit-svc"}


def test_jsonl_writes_everything_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    run_script(
        f"""
        from agentos_obs.exporters.jsonl import JSONLExporter
        exporter = JSONLExporter({str(path)!r}, flush_interval_s=60)
        """
    )
    assert len(path.read_text("utf-8").splitlines()) == 10


def test_the_sqlite_store_writes_everything_at_exit(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    run_script(
        f"""
        from agentos_obs.store import SQLiteStore
        exporter = SQLiteStore({str(db)!r}, flush_interval_s=60)
        """
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 10


def test_a_users_queued_exporter_gets_everything_at_exit(tmp_path: Path) -> None:
    out = tmp_path / "names.txt"
    run_script(
        f"""
        import time
        from agentos_obs.exporters import QueuedExporter
        def slow(trace):
            time.sleep(0.01)
            with open({str(out)!r}, "a") as handle:
                handle.write(trace.name + "\\n")
        exporter = QueuedExporter(slow, flush_interval_s=60)
        """
    )
    assert sorted(out.read_text().split()) == sorted(f"span-{i}" for i in range(10))


def test_a_hung_endpoint_cannot_hold_the_exit_beyond_the_bound() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from otlp_receiver import OTLPReceiver

    with OTLPReceiver() as receiver:
        receiver.gate = threading.Event()  # the backend never answers
        setup = f"""
            from agentos_obs.exporters.otlp import OTLPExporter
            exporter = OTLPExporter({receiver.endpoint!r}, timeout_s=60, flush_interval_s=60)
            """
        elapsed, stderr = run_script(setup, env={EXIT_TIMEOUT_ENV: "1"})
        baseline, _ = run_script(setup)  # no setting: the default bound
        assert receiver.attempts >= 1  # the request was made, and hung
        # The process spent about the bound waiting, not the 60 s timeout of the request.
        assert elapsed < 1.0 + 8.0, elapsed
        assert "not written within the exit bound" in stderr
        assert "otlp dropped data" in stderr
        assert baseline >= DEFAULT_EXIT_TIMEOUT_S - 0.5  # the default bound is 5 s
        assert baseline < DEFAULT_EXIT_TIMEOUT_S + 10.0
        receiver.gate.set()


def test_the_exit_bound_zero_skips_the_wait() -> None:
    _, stderr = run_script(
        """
        import time
        from agentos_obs._internal.batching import BatchWorker
        def hang(batch):
            time.sleep(3600)
        exporter = BatchWorker("hung", hang, flush_interval_s=60).put
        """,
        env={EXIT_TIMEOUT_ENV: "0"},
    )
    assert "hung dropped data" in stderr and "exit bound" in stderr
