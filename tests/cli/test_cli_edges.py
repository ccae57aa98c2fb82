"""The ``agentos-obs`` command at its edges (issue 11) and export through the read-back records
(issue 10), in real processes on real SQLite files: recorded control characters never reach
the terminal raw, out-of-range values are one line and exit 2, export writes what the live
exporters write, and ``ui`` / ``serve`` still serve the dashboard."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentos_obs.store import StoreReader
from agentos_obs.tracing import SpanKind, SpanStatus, Tracer
from store_fixtures import fill_store, one_call_trace

# Set the window title, clear the screen, an 8-bit CSI, a bidi override, a bell.
HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202egnp.exe\x00"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x00")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "agentos_obs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        encoding="utf-8",
        errors="surrogateescape",
    )


def _hostile(tracer: Tracer) -> None:
    root = tracer.begin_span(
        HOSTILE, SpanKind.AGENT, attributes={"agent.name": HOSTILE, "user.id": HOSTILE}
    )
    llm = tracer.begin_span(HOSTILE, SpanKind.LLM, parent=root)
    tracer.record_usage(llm, model=HOSTILE, input_tokens=10, output_tokens=2)
    tracer.end_span(llm)
    tool = tracer.begin_span("tool", SpanKind.TOOL, parent=root)
    tracer.end_span(tool, error=RuntimeError(HOSTILE))
    tracer.end_span(root, status=SpanStatus.ERROR)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "hostile.db"
    fill_store(db, _hostile)
    return db


@pytest.mark.parametrize(
    "args",
    [
        ["traces"],
        ["traces", "--format", "csv"],
        ["traces", "show", "-"],
        ["costs", "--by", "agent"],
        ["costs", "--by", "model", "--format", "csv"],
        ["costs", "--by", "user"],
        ["costs", "--as-model", "gpt-4o-mini", "--by", "model"],
    ],
)
def test_recorded_control_characters_never_reach_the_terminal(
    hostile_db: Path, args: list[str]
) -> None:
    if args[:2] == ["traces", "show"]:
        with StoreReader(hostile_db) as reader:
            (row,), _ = reader.traces()
        args = ["traces", "show", row["trace_id"]]
    result = run_cli(*args, "--db", str(hostile_db))
    assert result.returncode == 0, result.stderr
    for char in RAW:
        assert char not in result.stdout and char not in result.stderr, (args, repr(char))
    assert "evil\\x1b]0;pwned\\x07" in result.stdout  # shown, as escapes


def test_json_output_escapes_them_and_keeps_the_value(hostile_db: Path) -> None:
    for args in (["traces", "--format", "json"], ["costs", "--by", "agent", "--format", "json"]):
        result = run_cli(*args, "--db", str(hostile_db))
        assert result.returncode == 0, result.stderr
        for char in RAW:
            assert char not in result.stdout, (args, repr(char))
        data = json.loads(result.stdout)
        names = data["traces"][0]["name"] if "traces" in data else data["rows"][0]["key"]
        assert names.startswith("evil\x1b]0;pwned\x07")  # the same value, losslessly


def test_error_lines_are_neutralised_too(hostile_db: Path) -> None:
    result = run_cli("traces", "show", HOSTILE.replace("\x00", ""), "--db", str(hostile_db))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    for char in RAW:
        assert char not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["traces", "--since", "99999999999d"],
        ["traces", "--until", "99999999999w"],
        ["traces", "--limit", "99999999999999999999"],
        ["traces", "--offset", "99999999999999999999"],
        ["costs", "--since", "99999999999d"],
        ["export", "--until", "99999999999w"],
        ["export", "--limit", "99999999999999999999"],
        ["traces", "--min-duration", "9" * 400],
        ["traces", "--since", "last tuesday"],
    ],
)
def test_out_of_range_values_are_one_line_and_exit_2(hostile_db: Path, args: list[str]) -> None:
    result = run_cli(*args, "--db", str(hostile_db))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], result.stderr


def test_far_absolute_times_select_what_the_bound_would(hostile_db: Path) -> None:
    result = run_cli(
        "traces", "--since", "0001-01-01", "--until", "9999-12-31", "--format", "json",
        "--db", str(hostile_db),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["traces"]) == 1


# -- export goes through the read-back records and the live exporters -----------------------
def _varied(tracer: Tracer) -> None:
    for i in range(5):
        one_call_trace(tracer, f"t{i}", user=f"u{i % 2}", attributes={"tags": ["a", "b"]})
    root = tracer.begin_span("FunctionAgent.run", SpanKind.AGENT, attributes={"agent.name": "p"})
    failed = tracer.begin_span("chat", SpanKind.LLM, parent=root)
    tracer.end_span(failed, error=TimeoutError("slow"))
    tracer.end_span(root)


def test_export_writes_what_the_live_jsonl_exporter_writes(tmp_path: Path) -> None:
    from agentos_obs.exporters.jsonl import JSONLExporter

    db = tmp_path / "export.db"
    live_file = tmp_path / "live.jsonl"
    live = JSONLExporter(live_file, flush_interval_s=0.01)

    def build(tracer: Tracer) -> None:
        tracer.add_exporter(live)
        _varied(tracer)

    sealed = fill_store(db, build)
    live.close()
    out = tmp_path / "exported.jsonl"
    result = run_cli("export", "--db", str(db), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"exported {len(sealed)} traces" in result.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {line["trace_id"]: line for line in map(json.loads, live_file.read_text().splitlines())}
    assert len(exported) == len(sealed) == len(by_id)
    for line in exported:
        assert line == by_id[line["trace_id"]]  # the same line the live exporter wrote
    assert [line["start_time"] for line in exported] == sorted(
        line["start_time"] for line in exported
    )
    to_stdout = run_cli("export", "--db", str(db))
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == exported
    limited = run_cli("export", "--db", str(db), "--limit", "2")
    assert [json.loads(line) for line in limited.stdout.splitlines()] == exported[:2]


def test_export_of_a_file_name_with_braces(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    fill_store(db, lambda t: one_call_trace(t, "x"))
    out = tmp_path / "out{1}.jsonl"
    result = run_cli("export", "--db", str(db), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 1


# -- ui / serve still serve -----------------------------------------------------------------
@pytest.mark.parametrize("command", ["ui", "serve"])
def test_ui_command_serves_the_dashboard(tmp_path: Path, command: str) -> None:
    db = tmp_path / "ui.db"
    fill_store(db, lambda t: one_call_trace(t, "served"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentos_obs", command, "--db", str(db), "--port", "0",
         "--budget", "5/day"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", process.stdout.readline())
        assert match, process.stderr.read() if process.stderr else ""
        url = match.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "api/traces", timeout=5) as response:
                    traces = json.load(response)["traces"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert [t["name"] for t in traces] == ["served"]
        with urllib.request.urlopen(url + "api/budgets", timeout=5) as response:
            assert json.load(response)["budgets"][0]["name"] == "$5 daily"
    finally:
        process.terminate()
        process.wait(timeout=15)
