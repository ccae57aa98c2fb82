"""JSONL and console exporters, and the batching worker under the store and OTLP exporter."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from records_kit import good_traces, surrogate_name, time_beyond_uint64, unreadable_attributes

import agentos_obs._internal.guard as _guard
from agentos_obs import testing
from agentos_obs._internal.batching import (
    DEFAULT_EXIT_TIMEOUT_S,
    EXIT_TIMEOUT_ENV,
    BatchWorker,
    close_all,
    exit_timeout_s,
)
from agentos_obs.errors import ConfigurationError
from agentos_obs.exporters import QueuedExporter
from agentos_obs.exporters.console import ConsoleExporter, format_trace
from agentos_obs.exporters.jsonl import JSONLExporter
from agentos_obs.tracing import SpanKind, Trace, Tracer, TraceRecord


def agent_trace(tracer: Tracer, name: str = "research", payload: str = "") -> Trace:
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    with tracer.start_trace(name, attributes={"user.id": "u1"}):
        with tracer.start_span("planner", SpanKind.AGENT) as agent:
            agent.set_attribute("payload", payload)
            with tracer.start_span("chat", SpanKind.LLM) as llm:
                tracer.record_usage(
                    llm, model="gpt-4o", input_tokens=1000, output_tokens=250,
                    cache_read_tokens=100, reasoning_tokens=20,
                )  # fmt: skip
            try:
                with tracer.start_span("search", SpanKind.TOOL):
                    raise TimeoutError("too slow")
            except TimeoutError:
                pass
    tracer.remove_exporter(traces.append)
    return traces[0]


# -- JSONL --------------------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_jsonl_writes_one_trace_per_line(tracer: Tracer, tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path / "out" / "traces.jsonl")
    tracer.add_exporter(exporter)
    expected = [agent_trace(tracer, f"t{i}") for i in range(3)]
    for trace in expected:
        exporter.export(trace)
    with tracer.start_span("ünïcode ✓", SpanKind.CHAIN) as span:
        span.set_attribute("obj", object())
    assert exporter.flush()
    lines = read_lines(tmp_path / "out" / "traces.jsonl")
    assert [line["name"] for line in lines[:3]] == ["t0", "t1", "t2"]
    assert lines[0] == json.loads(json.dumps(expected[0].to_dict(), default=str))
    assert lines[0]["spans"][1]["input_tokens"] == 1000
    assert lines[-1]["spans"][0]["name"] == "ünïcode ✓"
    # The seal made the object JSON text (its bounded repr), which the line carries as is.
    assert json.loads(lines[-1]["spans"][0]["attributes"]["obj"]).startswith("<object object")
    exporter.close()


def test_jsonl_rotates_by_size_and_keeps_whole_lines(tracer: Tracer, tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    exporter = JSONLExporter(path, max_bytes=20_000, backup_count=2, batch_size=3)
    trace = agent_trace(tracer, payload="x" * 3000)
    line_size = len(json.dumps(trace.to_dict(), default=str, separators=(",", ":"))) + 1
    for _ in range(40):
        exporter.export(trace)
    exporter.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["traces.jsonl", "traces.jsonl.1", "traces.jsonl.2"]
    per_file = 20_000 // line_size
    for name in files:
        lines = read_lines(tmp_path / name)  # every line parses: nothing torn
        assert 1 <= len(lines) <= per_file
        assert (tmp_path / name).stat().st_size <= 20_000
    assert len(read_lines(tmp_path / "traces.jsonl.1")) == per_file
    # Older files beyond backup_count were deleted: fewer lines than traces remain.
    assert sum(len(read_lines(tmp_path / n)) for n in files) < 40


def test_jsonl_without_backups_truncates(tracer: Tracer, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    exporter = JSONLExporter(path, max_bytes=1, backup_count=0, batch_size=1)
    for i in range(3):
        exporter.export(agent_trace(tracer, f"n{i}"))
        exporter.flush()
    exporter.close()
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]
    assert [line["name"] for line in read_lines(path)] == ["n2"]  # one oversize line per file


def test_jsonl_from_many_threads(tracer: Tracer, tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path / "t-{pid}.jsonl")
    tracer.add_exporter(exporter)

    def work(worker: int) -> None:
        for i in range(50):
            with tracer.start_span(f"w{worker}-{i}", SpanKind.CHAIN):
                pass

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporter.close()
    assert exporter.path.name == f"t-{os.getpid()}.jsonl"
    lines = read_lines(exporter.path)
    assert sorted(line["name"] for line in lines) == sorted(
        f"w{w}-{i}" for w in range(8) for i in range(50)
    )


def test_jsonl_configuration_and_late_exports(tracer: Tracer, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        JSONLExporter(tmp_path)
    with pytest.raises(ConfigurationError):
        JSONLExporter(tmp_path / "{user}.jsonl")
    with pytest.raises(ConfigurationError):
        JSONLExporter(tmp_path / "x.jsonl", max_bytes=-1)
    exporter = JSONLExporter(tmp_path / "x.jsonl")
    exporter.close()
    exporter.export(agent_trace(tracer))
    assert testing.dropped_counts()["jsonl"] == 1


def test_jsonl_write_failures_are_counted(lenient: None, tracer: Tracer, tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path / "gone" / "x.jsonl")
    (tmp_path / "gone").rmdir()  # the directory disappears under the exporter
    (tmp_path / "gone").write_text("now a file")
    exporter.export(agent_trace(tracer))
    assert exporter.flush()
    assert testing.dropped_counts()["jsonl"] == 1
    assert testing.failure_counts()["jsonl"] == 1
    exporter.close()


def test_jsonl_a_trace_that_cannot_be_encoded_is_dropped_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = good_traces(100)
    exporter = JSONLExporter(tmp_path / "t.jsonl", batch_size=256)  # one batch for all
    for trace in [*good[:50], surrogate_name(), time_beyond_uint64(), unreadable_attributes()]:
        exporter.export(trace)
    for trace in good[50:]:
        exporter.export(trace)
    assert exporter.flush()
    lines = read_lines(tmp_path / "t.jsonl")
    names = [line["name"] for line in lines]
    assert names == [t.name for t in good[:50]] + ["hand-1", "hand-2"] + [t.name for t in good[50:]]
    # What the serialiser can repair is written repaired; what cannot be read is dropped.
    assert lines[50]["spans"][0]["name"] == "report-\ufffd.txt"
    assert lines[51]["spans"][0]["start_time"] == str(2**70)  # beyond int64: as text
    assert _guard.dropped_counts() == {"jsonl.unencodable": 1} and exporter.dropped == 1
    logged = [r.getMessage() for r in caplog.records if "jsonl.unencodable" in r.getMessage()]
    assert len(logged) == 1 and "RuntimeError: attributes cannot be read" in logged[0]
    exporter.close()


def test_jsonl_values_repaired_at_the_seal_are_written(tracer: Tracer, tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path / "t.jsonl")
    tracer.add_exporter(exporter)
    for i in range(40):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    with tracer.start_span("file-\udcff.txt", SpanKind.TOOL, {"n": float("nan")}):
        with tracer.start_span("chat", SpanKind.LLM) as llm:
            tracer.record_usage(llm, model="m", input_tokens=2**64, output_tokens=1)
    exporter.close()
    text = (tmp_path / "t.jsonl").read_bytes().decode("utf-8")  # strict UTF-8
    lines = [json.loads(line) for line in text.splitlines()]  # strict JSON: no NaN
    assert len(lines) == 41 and lines[-1]["spans"][0]["name"] == "file-\ufffd.txt"
    assert lines[-1]["spans"][0]["attributes"]["n"] == "NaN"
    assert exporter.dropped == 0


def test_exporters_refuse_what_is_not_a_finished_trace(tracer: Tracer, tmp_path: Path) -> None:
    exporter = JSONLExporter(tmp_path / "t.jsonl")
    unfinished = Trace(name="never ended")
    exporter.export(unfinished)
    exporter.export("not a trace")  # type: ignore[arg-type]
    exporter.export(agent_trace(tracer))
    exporter.close()
    assert len(read_lines(tmp_path / "t.jsonl")) == 1
    assert _guard.dropped_counts()["jsonl.unencodable"] == 2


# -- console ------------------------------------------------------------------------------


def test_console_prints_the_span_tree_with_usage_and_errors(tracer: Tracer) -> None:
    stream = io.StringIO()
    tracer.add_exporter(ConsoleExporter(stream, color=False), sync=True)
    trace = agent_trace(tracer)
    tracer.remove_exporter(tracer.exporters[0])
    ConsoleExporter(stream, color=False).export(trace)
    text = stream.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith(f"trace {trace.trace_id}  research  ")
    assert "1,250 tokens" in lines[0] and "$1.50" in lines[0] and "user=u1" in lines[0]
    assert lines[1].startswith("└─ agent planner")
    assert lines[2].startswith("   ├─ llm chat  gpt-4o  in 1,000 · out 250 · cache read 100")
    assert "reasoning 20" in lines[2] and "$1.50" in lines[2]
    assert lines[3].startswith("   └─ tool search")
    assert "ERROR TimeoutError: too slow" in lines[3]
    assert "\033[" not in text


def test_console_marks_unpriced_calls_and_colours_on_request(tracer: Tracer) -> None:
    with tracer.start_span("chat", SpanKind.LLM) as llm:
        tracer.record_usage(llm, model="mystery", input_tokens=5, output_tokens=5)
    assert llm.trace is not None and llm.trace.record is not None
    text = format_trace(llm.trace.record, color=True)
    assert "price unknown" in text and "(1 unpriced)" in text
    assert "\033[" in text


def test_console_handles_deep_and_wide_traces(tracer: Tracer) -> None:
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    scopes = []
    for i in range(1500):
        scope = tracer.start_span(f"level-{i}", SpanKind.CHAIN)
        scope.__enter__()
        scopes.append(scope)
    for scope in reversed(scopes):
        scope.__exit__(None, None, None)
    text = format_trace(traces[0], max_spans=2000)  # no recursion limit hit
    assert len(text.splitlines()) == 1501
    clipped = format_trace(traces[0], max_spans=10).splitlines()
    assert len(clipped) == 12 and clipped[-1].strip().endswith("1490 more spans")


def test_console_shows_failed_calls_and_wrapped_usage_from_the_records(tracer: Tracer) -> None:
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    with tracer.start_span("achat", SpanKind.LLM) as outer:
        with tracer.start_span("chat", SpanKind.LLM) as inner:
            tracer.record_usage(inner, model="gpt-4o", input_tokens=10, output_tokens=2)
        tracer.record_usage(outer, model="gpt-4o", input_tokens=10, output_tokens=2)
        try:
            with tracer.start_span("retry", SpanKind.LLM):
                raise ConnectionError("provider down")
        except ConnectionError:
            pass
    lines = format_trace(traces[0]).splitlines()
    assert "12 tokens" in lines[0]  # the counted call only, from the trace's rollup
    assert "(1 without usage)" in lines[0]  # the failed call: a call, cost unknown
    assert "in 10 · out 2 (counted below)" in lines[1]
    assert "price unknown" not in lines[1]
    assert "in 10 · out 2" in lines[2] and "(counted below)" not in lines[2]
    assert "no usage reported" in lines[3] and "ERROR ConnectionError: provider down" in lines[3]


def test_console_neutralises_terminal_escapes(tracer: Tracer) -> None:
    traces: list[TraceRecord] = []
    tracer.add_exporter(traces.append, sync=True)
    title, clear = "\x1b]0;pwned\x07", "\x1b[2J\x1b[H"
    with tracer.start_trace(f"job{title}", {"user.id": f"u{clear}"}):
        try:
            with tracer.start_span(f"step{clear}\nfake line", SpanKind.TOOL, {"k": clear}):
                raise ValueError(f"bad{title}")
        except ValueError:
            pass
    text = format_trace(traces[0], show_attributes=True)
    assert "\x1b" not in text and "\x07" not in text
    assert len(text.splitlines()) == 2  # the newline in the name did not fake a span line
    assert "job\\x1b]0;pwned\\x07" in text and "step\\x1b[2J\\x1b[H\\nfake line" in text
    colored = format_trace(traces[0], color=True)
    assert "\x1b]" not in colored and "\x1b[2J" not in colored  # only our own colour codes


def test_console_defaults_to_stdout_at_export_time(
    tracer: Tracer, capsys: pytest.CaptureFixture[str]
) -> None:
    tracer.add_exporter(ConsoleExporter(), sync=True)
    with tracer.start_span("hello", SpanKind.CHAIN):
        pass
    tracer.force_flush()  # in case the tracer runs exporters off its thread
    assert "chain hello" in capsys.readouterr().out


# -- batching worker ------------------------------------------------------------------------


def test_batch_worker_flush_waits_for_everything_queued_before() -> None:
    handled: list[list[int]] = []
    gate = threading.Event()

    def handle(batch: list[int]) -> None:
        gate.wait(10)
        handled.append(batch)

    worker: BatchWorker[int] = BatchWorker("t", handle, batch_size=4, flush_interval_s=3600)
    for i in range(10):
        assert worker.put(i)
    assert not worker.flush(timeout_s=0.05)  # the handler is held: not done yet
    gate.set()
    assert worker.flush()
    assert [i for batch in handled for i in batch] == list(range(10))
    assert all(len(batch) <= 4 for batch in handled)
    worker.close()
    assert not worker.put(99)
    assert testing.dropped_counts()["t"] == 1


def test_batch_worker_counts_drops_when_full() -> None:
    worker: BatchWorker[int] = BatchWorker(
        "full", lambda batch: None, batch_size=100, flush_interval_s=3600, max_queue=3
    )
    results = [worker.put(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert worker.dropped == 2 and testing.dropped_counts()["full"] == 2
    assert worker.flush() and worker.pending == 0
    worker.close()


def test_batch_worker_expected_errors_are_counted_not_raised() -> None:
    def handle(batch: list[int]) -> None:
        raise OSError("disk full")

    worker: BatchWorker[int] = BatchWorker(
        "io", handle, flush_interval_s=0.01, expected_errors=(OSError,)
    )
    worker.put(1)
    worker.put(2)
    assert worker.flush()  # strict mode is on, yet an environmental failure is not a bug
    assert testing.dropped_counts()["io"] == 2
    assert testing.failure_counts()["io"] >= 1
    worker.close()


def test_batch_worker_rejects_bad_settings() -> None:
    for bad in (dict(batch_size=0), dict(flush_interval_s=0), dict(max_queue=0)):
        with pytest.raises(ConfigurationError):
            BatchWorker("bad", lambda batch: None, **bad)  # type: ignore[arg-type]


def test_close_all_drains_every_worker_at_once_within_one_bound(lenient: None) -> None:
    hung = threading.Event()
    written: list[int] = []
    stuck: BatchWorker[int] = BatchWorker("stuck", lambda b: hung.wait(30), flush_interval_s=60)
    good: BatchWorker[int] = BatchWorker("fine", written.extend, flush_interval_s=60)
    for i in range(5):
        stuck.put(i)
        good.put(i)
    started = time.monotonic()
    assert not close_all(0.5, [stuck, good])  # the stuck one cannot drain...
    assert time.monotonic() - started < 2.0  # ...and costs the bound, not its 30 s
    assert written == [0, 1, 2, 3, 4]  # the other drained, though it came second
    assert _guard.dropped_counts()["stuck"] == 5 and "fine" not in _guard.dropped_counts()
    hung.set()


def test_exit_timeout_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(EXIT_TIMEOUT_ENV, raising=False)
    assert exit_timeout_s() == DEFAULT_EXIT_TIMEOUT_S == 5.0
    monkeypatch.setenv(EXIT_TIMEOUT_ENV, "0.25")
    assert exit_timeout_s() == 0.25
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(EXIT_TIMEOUT_ENV, bad)
        assert exit_timeout_s() == DEFAULT_EXIT_TIMEOUT_S
    assert EXIT_TIMEOUT_ENV in caplog.text


def test_a_worker_whose_thread_cannot_start_is_written_by_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What Python does to threads started while the interpreter exits (3.12+).
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    written: list[int] = []
    worker: BatchWorker[int] = BatchWorker("late", written.extend, batch_size=2)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert worker.put(1) and worker.put(2) and worker.put(3)  # the caller never sees it
    monkeypatch.undo()
    assert written == []
    assert worker.close()
    assert written == [1, 2, 3]


# -- users' own exporters ---------------------------------------------------------------------


def test_a_hanging_user_exporter_never_blocks_the_app(tracer: Tracer) -> None:
    release = threading.Event()
    seen: list[str] = []

    def hangs(trace: TraceRecord) -> None:
        release.wait(30)
        seen.append(trace.name)

    queued = QueuedExporter(hangs, max_queue=5)
    tracer.add_exporter(queued)
    started = time.monotonic()
    for i in range(50):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    assert time.monotonic() - started < 2.0  # 50 traces, with the exporter stuck on the first
    dropped = _guard.dropped_counts()[queued.name]
    assert (
        queued.name == "exporter:test_a_hanging_user_exporter_never_blocks_the_app.<locals>.hangs"
    )
    assert 50 - 6 <= dropped <= 50 - 5 and queued.dropped == dropped
    release.set()
    assert queued.flush()
    assert len(seen) + dropped == 50 and seen[0] == "job-0"
    queued.close()


def test_a_failing_user_exporter_loses_only_that_trace(lenient: None, tracer: Tracer) -> None:
    seen: list[str] = []

    class Picky:
        closed = False

        def export(self, trace: TraceRecord) -> None:
            if trace.name == "job-3":
                raise ValueError("cannot take this one")
            seen.append(trace.name)

        def close(self) -> None:
            self.closed = True

    inner = Picky()
    queued = QueuedExporter(inner, name="exporter:Picky")
    tracer.add_exporter(queued)
    for i in range(6):
        with tracer.start_span(f"job-{i}", SpanKind.CHAIN):
            pass
    assert queued.flush()
    assert seen == ["job-0", "job-1", "job-2", "job-4", "job-5"]
    assert _guard.dropped_counts()["exporter:Picky"] == 1 == queued.dropped
    assert _guard.failure_counts()["exporter:Picky"] == 1
    queued.close()
    assert inner.closed  # the wrapped exporter's own lifecycle is passed on


def test_a_failing_user_exporter_surfaces_in_strict_mode(tracer: Tracer) -> None:
    def broken(trace: TraceRecord) -> None:
        raise KeyError("bug in the user's exporter")

    queued = QueuedExporter(broken)
    tracer.add_exporter(queued)
    with tracer.start_span("job", SpanKind.CHAIN):
        pass  # the app is not interrupted...
    with pytest.raises(KeyError):
        queued.flush()  # ...the test suite is
    queued.close()


def test_queued_exporter_rejects_what_cannot_export() -> None:
    with pytest.raises(ConfigurationError):
        QueuedExporter(42)
    assert JSONLExporter.queued and QueuedExporter.queued  # a tracer need not wrap them


# -- the examples of this part run offline ----------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("sqlite_store.py", ["By model (computed in SQL", "Summary: 40 traces"]),
        ("otlp_export.py", ["No OTLP endpoint configured", "chat gpt-4o-mini", "parent=-"]),
        ("prometheus_metrics.py", ["llm_tokens_total{", '# {trace_id="']),
    ],
)
def test_examples_run_offline(script: str, expected: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
    env.pop("AGENTOS_OBS_DB", None)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
