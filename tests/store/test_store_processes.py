"""SQLite store across processes: several writers on one file, fork, SIGKILL, exit flush."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer


def _write_traces(path: str, worker: int, count: int) -> list[str]:
    """Run in a worker process: ``count`` traces of 2 spans, then flush."""
    store = SQLiteStore(path, batch_size=7, flush_interval_s=0.01)
    tracer = Tracer(f"worker-{worker}")
    tracer.add_exporter(store)
    ids = []
    for i in range(count):
        with tracer.start_span(f"w{worker}-{i}", SpanKind.AGENT) as span:
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(llm, model="m", input_tokens=1, output_tokens=2, cost_usd=0.001)
        ids.append(span.trace_id)
    store.close()
    return ids


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # created by the workers, all at once
    workers, per_worker = 4, 150
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(_write_traces, [(str(path), w, per_worker) for w in range(workers)])
    expected = {trace_id for ids in results for trace_id in ids}
    assert len(expected) == workers * per_worker
    assert _integrity(path) == "ok"
    with SQLiteStore.open_readonly(path) as store:
        rows = store.list_traces(limit=10_000)
        assert {r["trace_id"] for r in rows} == expected
        assert all(r["span_count"] == 2 for r in rows)  # no trace merged with another
        summary = store.summary()
        assert summary["span_count"] == 2 * workers * per_worker
        assert summary["output_tokens"] == 2 * workers * per_worker
        services = {r["service_name"] for r in rows}
        assert services == {f"worker-{w}" for w in range(workers)}


def _forked_child(path: str, store: SQLiteStore, worker: int) -> None:
    tracer = Tracer(f"child-{worker}")
    tracer.add_exporter(store)
    for i in range(20):
        with tracer.start_span(f"child{worker}-{i}", SpanKind.CHAIN):
            with tracer.start_span("step", SpanKind.TOOL):
                pass
    assert store.flush()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_store_created_before_fork_works_in_the_children(tmp_path: Path) -> None:
    path = tmp_path / "forked.db"
    store = SQLiteStore(path, flush_interval_s=60, batch_size=10_000)
    tracer = Tracer("parent")
    tracer.add_exporter(store)
    for i in range(10):  # still queued in the parent when it forks
        with tracer.start_span(f"parent-{i}", SpanKind.CHAIN):
            with tracer.start_span("step", SpanKind.TOOL):
                pass
    assert store.stats()["queued"] == 10
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_forked_child, args=(str(path), store, w)) for w in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert store.flush()
    rows = store.list_traces(limit=1000)
    store.close()
    assert len(rows) == 10 + 3 * 20
    # The parent's queued traces were written once, by the parent, not again by children.
    assert all(r["span_count"] == 2 for r in rows)
    assert sum(r["name"].startswith("parent-") for r in rows) == 10
    assert _integrity(path) == "ok"


VICTIM = textwrap.dedent(
    """
    import sys
    from agentos_obs.tracing import SpanKind
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import Tracer
    store = SQLiteStore(sys.argv[1], batch_size=25, flush_interval_s=0.01)
    tracer = Tracer("victim")
    tracer.add_exporter(store)
    made = 0
    while True:
        with tracer.start_span("job", SpanKind.AGENT):
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                llm.set_attribute("payload", "x" * 500)
                tracer.record_usage(llm, model="m", input_tokens=3, output_tokens=1, cost_usd=0.0)
        made += 1
        if made % 100 == 0:
            store.flush()
            print(made, flush=True)  # every trace up to here is committed
    """
)


def test_sigkill_mid_run_leaves_a_readable_database(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flushed = 0
    try:
        assert proc.stdout is not None
        while flushed < 1000:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"victim exited early: {proc.stderr.read() if proc.stderr else ''}")
            flushed = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-run: it keeps writing batches until now
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert _integrity(path) == "ok"
    with SQLiteStore(path) as store:  # a writer opens it again (WAL recovery)
        count = store.count_traces()
        summary = store.summary()
    # Everything reported flushed is there; what was lost is at most what was not.
    assert count >= flushed
    assert summary["span_count"] == 2 * count  # only whole batches (transactions) landed
    assert summary["input_tokens"] == 3 * count


EXITER = textwrap.dedent(
    """
    import sys
    from agentos_obs.tracing import SpanKind
    from agentos_obs.store import SQLiteStore
    from agentos_obs.tracing import Tracer
    store = SQLiteStore(sys.argv[1], flush_interval_s=3600, batch_size=100000)
    tracer = Tracer("exiter")
    tracer.add_exporter(store)
    for i in range(123):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    print(store.stats()["queued"], flush=True)
    # no flush, no close: the interpreter's exit flushes
    """
)


def test_queued_traces_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    path = tmp_path / "exit.db"
    result = subprocess.run(
        [sys.executable, "-c", EXITER, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "123"  # all still queued when the script ended
    with SQLiteStore.open_readonly(path) as store:
        assert store.count_traces() == 123
