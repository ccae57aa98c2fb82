"""The store's data directory deleted while the app runs: traces after the deletion land in
a new file at the same path (or are counted as dropped), said once in the log — never
written to the unlinked file and counted as written."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import agentos_obs._internal.guard as _guard
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer


def stored_names(path: Path) -> set[str]:
    """Names in the file at ``path`` now (a fresh reader: not the store's connection)."""
    with SQLiteStore.open_readonly(path) as reader:
        return {row["name"] for row in reader.list_traces(limit=100_000)}


def lost_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "deleted or replaced" in r.getMessage()]


def test_traces_after_the_directory_is_deleted_go_to_a_new_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    path = data / "traces.db"
    store = SQLiteStore(path, flush_interval_s=0.01, batch_size=16)
    tracer = Tracer("app")
    tracer.add_exporter(store)
    deletions = 0  # completed rmtree calls, read by the app thread
    stop = threading.Event()
    begun: list[tuple[int, str]] = []  # (deletions before the trace began, its name)

    def app() -> None:  # the app's own thread, tracing all along
        count = 0
        while not stop.is_set():
            generation = deletions
            name = f"gen{generation}-{count}"
            with tracer.start_span(name, SpanKind.AGENT):
                with tracer.start_span("step", SpanKind.TOOL):
                    pass
            begun.append((generation, name))
            count += 1
            time.sleep(0.0005)

    with caplog.at_level(logging.WARNING, logger="agentos_obs"):
        worker = threading.Thread(target=app)
        worker.start()
        try:
            for _ in range(2):  # deleted twice: made again twice, logged once
                time.sleep(0.3)
                shutil.rmtree(data)
                deletions += 1
            time.sleep(0.3)
        finally:
            stop.set()
            worker.join()
        assert store.flush()
    try:
        # What was written before the last deletion went with it; everything begun after
        # it is in the file at the path: none written to the unlinked file.
        last = [name for generation, name in begun if generation == 2]
        assert len(last) > 20
        assert set(last) <= stored_names(path)
        assert store.stats()["dropped_traces"] == 0 and "store" not in _guard.dropped_counts()
        assert store.stats()["recreated"] == 2
        assert len(lost_messages(caplog)) == 1
        # The store's own queries follow it to the new file.
        assert set(last) <= {r["name"] for r in store.list_traces(limit=100_000)}
    finally:
        store.close()


def test_a_directory_that_cannot_be_made_again_counts_the_loss(
    lenient: None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    path = data / "traces.db"
    tracer = Tracer("app")
    store = SQLiteStore(path, flush_interval_s=0.01)
    try:
        tracer.add_exporter(store)
        with tracer.start_span("kept", SpanKind.CHAIN):
            pass
        assert store.flush()
        shutil.rmtree(data)
        data.write_text("a file where the directory was")  # mkdir now fails
        for i in range(5):
            with tracer.start_span(f"lost-{i}", SpanKind.CHAIN):
                pass
        assert store.flush()
        assert store.stats()["dropped_traces"] == _guard.dropped_counts()["store"] == 5
        assert store.stats()["written_traces"] == 1
        data.unlink()  # the environment is fixed: the store picks up again
        for i in range(3):
            with tracer.start_span(f"back-{i}", SpanKind.CHAIN):
                pass
        assert store.flush()
        assert stored_names(path) == {f"back-{i}" for i in range(3)}
        assert store.stats()["recreated"] == 1
    finally:
        store.close()


WRITER_PROCESS = textwrap.dedent(
    """
    import logging
    logging.basicConfig()  # the app's logging: where the library's one warning goes
    import json, sys, time
    import agentos_obs._internal.guard as _guard
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import SpanKind, Tracer

    store = SQLiteStore(sys.argv[1], flush_interval_s=0.01)
    tracer = Tracer("proc")
    tracer.add_exporter(store)
    for i in range(20):
        with tracer.start_span(f"first-{i}", SpanKind.CHAIN):
            pass
    store.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent deletes the directory meanwhile
    for i in range(20):
        with tracer.start_span(f"second-{i}", SpanKind.CHAIN):
            pass
    store.flush()
    print(json.dumps({**store.stats(), "drops": _guard.dropped_counts()}), flush=True)
    store.close()
    """
)


def test_a_writer_process_recreates_its_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "traces.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert stored_names(path) == {f"first-{i}" for i in range(20)}
        shutil.rmtree(data)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        stats = json.loads(proc.stdout.readline())
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stats["recreated"] == 1 and stats["dropped_traces"] == 0 and stats["drops"] == {}
    assert stats["written_traces"] == 40
    assert stored_names(path) == {f"second-{i}" for i in range(20)}
    assert stderr.count("deleted or replaced while in use") == 1


def test_a_batch_committed_as_the_file_is_deleted_is_written_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import agentos_obs.store._writer as writer_module

    data = tmp_path / "data"
    path = data / "traces.db"
    real = writer_module._commit
    calls = 0

    def commit_then_delete(*args: object) -> object:
        nonlocal calls
        calls += 1
        result = real(*args)  # type: ignore[arg-type]
        if calls == 1:
            shutil.rmtree(data)  # gone just after this batch went into it
        return result

    monkeypatch.setattr(writer_module, "_commit", commit_then_delete)
    tracer = Tracer("app")
    store = SQLiteStore(path, batch_size=100, flush_interval_s=3600)
    try:
        tracer.add_exporter(store)
        for i in range(10):
            with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
                pass
        assert store.flush()
        assert calls == 2
        assert stored_names(path) == {f"job-{i}" for i in range(10)}
        stats = store.stats()
        assert (stats["written_traces"], stats["recreated"], stats["dropped_traces"]) == (10, 1, 0)
    finally:
        store.close()
