"""Every command without the optional package it needs: one line naming the extra, exit 1,
no traceback; and the commands that do not need it keep working.

The missing extra is simulated in a child process: a ``sitecustomize`` first on PYTHONPATH
puts ``None`` in ``sys.modules`` for each blocked package, so ``import starlette`` raises
ImportError there exactly as on a machine without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer

SITECUSTOMIZE = """
import os, sys
for name in filter(None, os.environ.get("AGENTOS_OBS_TEST_BLOCK", "").split(",")):
    sys.modules[name] = None
"""

EVERY_EXTRA = ("starlette", "uvicorn", "rich", "langchain_core", "llama_index", "opentelemetry")


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return site


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("store") / "traces.db"
    tracer = Tracer("extras")
    with SQLiteStore(path) as store:
        tracer.add_exporter(store)
        with tracer.start_span("agent", SpanKind.AGENT) as agent:
            tracer.record_llm_call("gpt-4o", 100, 10, provider="openai", cost_usd=0.01)
        assert store.flush()
    return path, agent.trace_id


def run_without(
    blocker: Path, blocked: tuple[str, ...], *args: str
) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "AGENTOS_OBS_TEST_BLOCK": ",".join(blocked),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "agentos_obs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def assert_names_the_extra(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("agentos-obs: error: ")
    for word in words:
        assert word in lines[0]


def test_the_blocker_really_blocks(blocker: Path) -> None:
    code = "import starlette"
    env = {**os.environ, "PYTHONPATH": str(blocker), "AGENTOS_OBS_TEST_BLOCK": "starlette"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1 and "ModuleNotFoundError: import of starlette" in result.stderr


@pytest.mark.parametrize("command", ["ui", "serve"])
@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_ui_without_the_ui_extra(
    blocker: Path, db: tuple[Path, str], command: str, missing: str
) -> None:
    result = run_without(blocker, (missing,), command, "--db", str(db[0]), "--port", "0")
    assert_names_the_extra(result, "the dashboard needs", missing, "pip install 'agentos-obs[ui]'")


@pytest.mark.parametrize(
    "args",
    [
        ("traces",),
        ("traces", "show", "{trace_id}"),
        ("costs",),
        ("prices", "gpt-4o"),
        ("demo", "--fast"),
    ],
)
def test_tables_without_rich_name_the_cli_extra(
    blocker: Path, db: tuple[Path, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    path, trace_id = db
    argv = [a.format(trace_id=trace_id) for a in args]
    if argv[0] != "prices":
        argv += ["--db", str(tmp_path / "demo.db" if argv[0] == "demo" else path)]
    result = run_without(blocker, ("rich",), *argv)
    assert_names_the_extra(result, "pip install 'agentos-obs[cli]'", "--format json")


@pytest.mark.parametrize("framework", ["langchain_core", "llama_index"])
def test_demo_without_a_framework_names_the_extra(
    blocker: Path, tmp_path: Path, framework: str
) -> None:
    result = run_without(
        blocker, (framework,), "demo", "--fast", "--format", "json", "--db", str(tmp_path / "d.db")
    )
    assert_names_the_extra(result, "the demo needs LangChain and LlamaIndex", "[all]")


def test_otlp_export_without_opentelemetry_names_the_otel_extra(
    blocker: Path, db: tuple[Path, str]
) -> None:
    result = run_without(
        blocker,
        ("opentelemetry",),
        *("export", "--db", str(db[0]), "--format", "otlp"),
        *("--endpoint", "http://127.0.0.1:9/v1/traces"),
    )
    assert_names_the_extra(result, "pip install 'agentos-obs[otel]'")


def test_commands_that_need_no_extra_work_with_every_extra_missing(
    blocker: Path, db: tuple[Path, str], tmp_path: Path
) -> None:
    path, trace_id = db
    for args in (
        ("--version",),
        ("traces", "--db", str(path), "--format", "json"),
        ("traces", "--db", str(path), "--format", "csv"),
        ("traces", "show", trace_id, "--db", str(path), "--format", "json"),
        ("costs", "--db", str(path), "--format", "json"),
        ("prices", "gpt-4o", "--format", "json"),
        ("export", "--db", str(path), "-o", str(tmp_path / "out.jsonl")),
        ("run", "--db", str(path), "--", sys.executable, "-c", "print('child ran')"),
    ):
        result = run_without(blocker, EVERY_EXTRA, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr, args
    assert trace_id in (tmp_path / "out.jsonl").read_text()
