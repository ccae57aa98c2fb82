"""SQLite store faults: locked and read-only databases, full queue, bugs in strict mode.

The app must be unaffected, the loss counted, and nothing flushed before the fault lost.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.store._rows as _store_rows
from agentos_obs import testing
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer, TraceRecord


def make_traces(tracer: Tracer, count: int, prefix: str) -> list[TraceRecord]:
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    for i in range(count):
        with tracer.start_span(f"{prefix}-{i}", SpanKind.AGENT):
            with tracer.start_span("tool", SpanKind.TOOL):
                pass
    tracer.remove_exporter(traces.append)
    return traces


def names(store: SQLiteStore) -> set[str]:
    return {row["name"] for row in store.list_traces(limit=10_000)}


def test_a_locked_database_loses_only_what_could_not_be_written(
    lenient: None, tmp_path: Path
) -> None:
    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "locked.db", busy_timeout_s=0.05, flush_interval_s=0.01)
    try:
        for trace in make_traces(tracer, 5, "before"):
            store.export(trace)
        assert store.flush()
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        try:
            tracer.add_exporter(store)
            results = []
            for i in range(7):
                with tracer.start_span(f"during-{i}", SpanKind.AGENT) as span:
                    results.append(i * 2)  # the app's own work goes on
                assert span.ended
            tracer.remove_exporter(store)
            assert results == [0, 2, 4, 6, 8, 10, 12]
            assert store.flush()  # processed (lost), not stuck
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert testing.dropped_counts()["store"] == 7
        assert store.stats()["dropped_traces"] == 7
        assert testing.failure_counts()["store"] >= 1
        for trace in make_traces(tracer, 3, "after"):
            store.export(trace)
        assert store.flush()
        stored = names(store)
        assert {f"before-{i}" for i in range(5)} <= stored
        assert {f"after-{i}" for i in range(3)} <= stored
        assert not any(name.startswith("during-") for name in stored)
    finally:
        store.close()


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    tracer = Tracer("app")
    # The writer waits for a full batch or an hour: only flush() writes, so counts are exact.
    store = SQLiteStore(tmp_path / "full.db", max_queue=5, batch_size=1000, flush_interval_s=3600)
    try:
        tracer.add_exporter(store)
        for i in range(12):
            with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
                pass
        assert testing.dropped_counts()["store"] == 7
        assert store.stats() == {
            "queued": 5, "written_traces": 0, "written_spans": 0, "dropped_traces": 7,
            "dropped_spans": 0, "marked_incomplete": 0, "pruned_traces": 0, "live_traces": 0,
            "recreated": 0,
        }  # fmt: skip
        assert store.flush()
        assert names(store) == {f"job-{i}" for i in range(5)}
    finally:
        store.close()


def test_a_stuck_writer_never_blocks_the_app(lenient: None, tmp_path: Path) -> None:
    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "stuck.db", max_queue=10, batch_size=1, busy_timeout_s=30)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer will wait on this lock
    try:
        tracer.add_exporter(store)
        for i in range(200):
            with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
                pass
        dropped = testing.dropped_counts()["store"]
        assert 200 - 11 <= dropped <= 200 - 10  # queue full; the writer holds one batch
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.flush()
    stored = store.count_traces()
    store.close()
    assert stored + dropped == 200  # every trace written or counted


READONLY_WRITER = textwrap.dedent(
    """
    import json, logging, os, sys, traceback
    logging.basicConfig()  # the app's logging: where the library's one warning goes
    from agentos_obs import testing
    from agentos_obs.tracing import SpanKind
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import Tracer
    if os.geteuid() == 0:  # root ignores file modes: become nobody (imports done as root)
        os.setgid(65534)
        os.setuid(65534)

    store = SQLiteStore(sys.argv[1], flush_interval_s=0.01)
    tracer = Tracer("app")
    tracer.add_exporter(store)
    answers = []
    for i in range(4):
        with tracer.start_span(f"late-{i}", SpanKind.CHAIN):
            answers.append(i)
    flushed = store.flush()
    print(json.dumps({
        "answers": answers,
        "flushed": flushed,
        "dropped": testing.dropped_counts().get("store", 0),
        "failures": testing.failure_counts().get("store", 0),
        "readable": store.count_traces(),
    }))
    """
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user can enter and write (the app may run as another user)."""
    path = Path(tempfile.mkdtemp(prefix="agentos-ro-", dir="/tmp" if os.name == "posix" else None))
    os.chmod(path, 0o777)  # SQLite creates the -shm file next to the database
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_read_only_database_file_costs_the_app_nothing(shared_dir: Path) -> None:
    path = shared_dir / "ro.db"
    tracer = Tracer("app")
    with SQLiteStore(path) as store:
        for trace in make_traces(tracer, 6, "kept"):
            store.export(trace)
    os.chmod(path, 0o444)
    result = subprocess.run(
        [sys.executable, "-c", READONLY_WRITER, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["answers"] == [0, 1, 2, 3]  # the app ran normally
    assert report["flushed"] is True
    assert report["dropped"] == 4 and report["failures"] >= 1
    assert report["readable"] == 6  # reads still work
    assert "readonly database" in result.stderr  # logged once, with the reason
    with SQLiteStore.open_readonly(path) as reader:
        assert names(reader) == {f"kept-{i}" for i in range(6)}


def test_a_bug_in_the_writer_surfaces_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(span: Any, *args: Any) -> tuple[Any, ...]:
        raise TypeError("serialisation bug")

    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "bug.db", flush_interval_s=0.01)
    try:
        monkeypatch.setattr(_store_rows, "span_row", broken)
        for trace in make_traces(tracer, 2, "x"):
            store.export(trace)
        with pytest.raises(TypeError, match="serialisation bug"):
            store.flush()
        assert testing.dropped_counts()["store"] == 2
    finally:
        monkeypatch.undo()
        store.close()


def test_in_production_a_writer_bug_is_counted_and_the_store_keeps_going(
    lenient: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = _store_rows.span_row

    def sometimes_broken(span: Any, *args: Any) -> tuple[Any, ...]:
        if span.name == "poison":
            raise TypeError("serialisation bug")
        return real(span, *args)

    monkeypatch.setattr(_store_rows, "span_row", sometimes_broken)
    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "bug.db", flush_interval_s=0.01, batch_size=1)
    try:
        tracer.add_exporter(store)
        for name in ("ok-1", "poison", "ok-2"):
            with tracer.start_span(name, SpanKind.CHAIN):
                pass
            store.flush()  # one batch per trace: the poison batch alone is lost
        assert store.flush() is True
        assert names(store) == {"ok-1", "ok-2"}
        assert testing.dropped_counts()["store"] == 1
        assert testing.failure_counts()["store"] == 1
    finally:
        store.close()


def test_exports_after_close_are_counted(tmp_path: Path) -> None:
    tracer = Tracer("app")
    store = SQLiteStore(tmp_path / "closed.db")
    tracer.add_exporter(store)
    store.close()
    with tracer.start_span("late", SpanKind.CHAIN):
        pass
    assert testing.dropped_counts()["store"] == 1
    reopened = SQLiteStore.open_readonly(store.path)
    assert reopened.count_traces() == 0
    reopened.close()
