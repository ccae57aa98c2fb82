"""The ``agentos-obs`` command end to end: real processes on a temporary SQLite store.

One ``agentos-obs demo --fast`` fills a store per module; the other commands read it back and
are checked against the store's own query API and the pricing module.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentos_obs.pricing import Usage, default_catalog
from agentos_obs.store import SQLiteStore

DEMO_AGENTS = {"research_agent", "support_agent", "docs_qa"}
DEMO_MODELS = {"gpt-4o-mini", "claude-3-5-haiku-latest", "gpt-4o"}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m agentos_obs ARGS`` in a child process (what the console script runs)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "agentos_obs", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def run_json(*args: str) -> Any:
    result = run_cli(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    db = tmp_path_factory.mktemp("cli") / "demo.db"
    result = run_cli("demo", "--fast", "--db", str(db))
    assert result.returncode == 0, result.stderr
    yield db, result


@pytest.fixture(scope="module")
def db(demo: tuple[Path, Any]) -> Path:
    return demo[0]


@pytest.fixture(scope="module")
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore.open_readonly(db)
    yield opened
    opened.close()


# -- demo ------------------------------------------------------------------------------------
def test_demo_prints_trees_costs_latency_and_error_rate(demo: tuple[Path, Any]) -> None:
    db, result = demo
    out = result.stdout
    for agent in DEMO_AGENTS | {"release_notes", "build_docs_index"}:
        assert agent in out
    # the span trees: tools, the retriever, the LlamaIndex query engine, the failing tool
    for span in ("search_docs", "calculator", "FakeRetriever", "RetrieverQueryEngine.query"):
        assert span in out
    assert "get_order_status" in out and "ERROR: orders service unreachable" in out
    assert "first token" in out  # the streaming call's time to first token
    for section in ("Cost and tokens by model", "Cost and tokens by agent", "Latency by stage"):
        assert section in out
    for model in DEMO_MODELS:
        assert model in out
    assert "Error rate  12.5% (1 of 8 traces failed)" in out
    assert f"Stored 8 traces in {db}" in out


def test_demo_stores_what_it_reports(db: Path, store: SQLiteStore) -> None:
    summary = store.summary()
    assert summary["trace_count"] == 8
    assert summary["error_count"] == 1
    assert summary["total_cost_usd"] > 0
    assert summary["cache_read_tokens"] > 0  # the research agent's later calls hit the cache
    assert {row["key"] for row in store.aggregate("model")} == DEMO_MODELS
    agents = {row["key"] for row in store.aggregate("agent")}
    assert agents >= DEMO_AGENTS
    assert {row["key"] for row in store.aggregate("user")} >= {
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
    }
    assert all(row["unpriced_llm_calls"] == 0 for row in store.aggregate("model"))
    (failed,) = store.list_traces(status="error")
    assert failed["name"] == "support_agent"
    spans = store.get_trace(failed["trace_id"])["spans"]
    tool = next(s for s in spans if s["name"] == "get_order_status")
    assert tool["status"] == "error" and tool["attributes"]["error.type"] == "ConnectionError"


def test_demo_json_matches_the_store(tmp_path: Path) -> None:
    db = tmp_path / "json.db"
    report = run_json("demo", "--fast", "--db", str(db))
    with _open(db) as store:
        summary = store.summary()
        assert report["summary"]["trace_count"] == summary["trace_count"] == 8
        assert report["summary"]["cost_usd"] == pytest.approx(summary["total_cost_usd"])
        assert len(report["traces"]) == 8
        assert {t["trace"]["trace_id"] for t in report["traces"]} == {
            t["trace_id"] for t in store.list_traces(limit=100)
        }
    stages = {row["stage"]: row for row in report["stages"]}
    assert {"llm", "tool", "retrieval", "agent", "chain", "embedding"} <= set(stages)
    for row in stages.values():
        # self time never exceeds inclusive time, percentile by percentile
        assert row["self"]["total"] <= row["inclusive"]["total"] + 1e-6
        assert row["self"]["p50"] <= row["inclusive"]["p95"] + 1e-6


class _open:
    def __init__(self, db: Path) -> None:
        self.store = SQLiteStore.open_readonly(db)

    def __enter__(self) -> SQLiteStore:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def test_demo_default_db_comes_from_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "data" / "traces.db"
    result = run_cli("demo", "--fast", env={"AGENTOS_OBS_DB": str(target)})
    assert result.returncode == 0, result.stderr
    assert target.is_file()
    assert f"Stored 8 traces in {target}" in result.stdout
    # and the other commands find the same store without --db
    listed = run_cli("traces", "--format", "json", env={"AGENTOS_OBS_DB": str(target)})
    assert len(json.loads(listed.stdout)["traces"]) == 8


# -- traces ----------------------------------------------------------------------------------
def test_traces_list_and_filters(db: Path, store: SQLiteStore) -> None:
    every = run_json("traces", "--db", str(db), "--limit", "100")["traces"]
    assert [t["trace_id"] for t in every] == [t["trace_id"] for t in store.list_traces(limit=100)]
    page = run_json("traces", "--db", str(db), "--limit", "3")
    assert len(page["traces"]) == 3 and page["has_more"] is True
    last = run_json("traces", "--db", str(db), "--limit", "3", "--offset", "6")
    assert len(last["traces"]) == 2 and last["has_more"] is False

    def names(*filters: str) -> list[str]:
        return sorted(t["name"] for t in run_json("traces", "--db", str(db), *filters)["traces"])

    assert names("--status", "error") == ["support_agent"]
    assert names("--model", "gpt-4o-mini") == ["research_agent"] * 3
    assert names("--agent", "docs_qa") == ["docs_qa", "docs_qa"]
    assert names("--user", "bob") == ["support_agent"]
    assert names("--search", "release") == ["release_notes"]
    priciest = max(t["cost_usd"] for t in every)
    assert names("--min-cost", str(priciest)) == [
        t["name"] for t in every if t["cost_usd"] == priciest
    ]
    assert names("--min-duration", "1h") == []
    assert names("--since", "1h") == sorted(t["name"] for t in every)
    assert names("--until", "2000-01-01") == []


def test_traces_table_and_csv(db: Path) -> None:
    table = run_cli("traces", "--db", str(db))
    assert table.returncode == 0
    assert "support_agent" in table.stdout and "error" in table.stdout
    rows = list(
        csv.DictReader(io.StringIO(run_cli("traces", "--db", str(db), "--format", "csv").stdout))
    )
    assert len(rows) == 8
    assert {"trace_id", "name", "status", "duration_ms", "cost_usd", "user_id"} <= set(rows[0])
    assert sum(r["status"] == "error" for r in rows) == 1


def test_traces_show_by_prefix(db: Path, store: SQLiteStore) -> None:
    (failed,) = store.list_traces(status="error")
    prefix = failed["trace_id"][:10]
    tree = run_cli("traces", "show", prefix, "--db", str(db))
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert failed["trace_id"] in lines[0]
    assert any("get_order_status" in line and "ERROR" in line for line in lines)
    # the retriever is drawn under its tool: deeper indentation on the next line
    tool_line = next(i for i, line in enumerate(lines) if "search_docs" in line)
    assert "FakeRetriever" in lines[tool_line + 1]
    assert lines[tool_line + 1].index("retrieval") > lines[tool_line].index("tool")

    data = run_json("traces", "show", prefix, "--db", str(db))
    ids = {s["span_id"] for s in data["spans"]}
    assert len(data["spans"]) == failed["span_count"]
    assert sum(1 for s in data["spans"] if s["parent_id"] not in ids) == 1  # one root


def test_traces_show_unknown_id(db: Path) -> None:
    assert_clean_error(run_cli("traces", "show", "ffffffffffff", "--db", str(db)), 1, "no trace")


# -- costs -----------------------------------------------------------------------------------
def test_costs_by_each_key(db: Path, store: SQLiteStore) -> None:
    total = store.summary()["total_cost_usd"]
    for by in ("model", "agent", "user", "day"):
        rows = run_json("costs", "--db", str(db), "--by", by)["rows"]
        assert sum(r["cost_usd"] for r in rows) == pytest.approx(total), by
        expected = {r["key"]: r["cost_usd"] for r in store.aggregate(by)}
        assert {r["key"]: r["cost_usd"] for r in rows} == pytest.approx(expected)
    table = run_cli("costs", "--db", str(db), "--by", "agent")
    assert "research_agent" in table.stdout and "total" in table.stdout
    assert (
        run_json("costs", "--db", str(db), "--since", "2000-01-01", "--until", "2000-01-02")["rows"]
        == []
    )


def _by_hand(row: dict[str, Any], price: Any) -> float:
    """USD of one call at ``price`` (USD per 1M tokens), the textbook formula: cache reads and
    writes at their rates, the rest of the input at the input rate."""
    plain_input = row["input_tokens"] - row["cache_read_tokens"] - row["cache_write_tokens"]
    return (
        plain_input * price.input_mtok
        + row["cache_read_tokens"] * price.cache_read_mtok
        + row["cache_write_tokens"] * price.cache_write_mtok
        + row["output_tokens"] * price.output_mtok
    ) / 1e6


@pytest.mark.parametrize("target", ["gpt-4o-mini", "claude-3-5-haiku", "gpt-4o"])
def test_costs_as_model_reprices_each_call(db: Path, store: SQLiteStore, target: str) -> None:
    usage_rows = store.usage_rows()
    assert any(r["cache_read_tokens"] for r in usage_rows)  # the arithmetic must cover cache
    catalog = default_catalog()
    price = catalog.resolve(target)
    assert price is not None and not price.tiered
    result = run_json("costs", "--db", str(db), "--as-model", target, "--by", "model")
    expected_total = sum(_by_hand(r, price) for r in usage_rows)
    assert result["total"]["as_model_cost_usd"] == pytest.approx(expected_total, rel=1e-9)
    assert result["total"]["as_model_cost_usd"] == pytest.approx(
        sum(
            catalog.cost(
                target,
                Usage(
                    r["input_tokens"],
                    r["output_tokens"],
                    r["cache_read_tokens"],
                    r["cache_write_tokens"],
                    r["reasoning_tokens"],
                ),
            )
            or 0.0
            for r in usage_rows
        ),
        rel=1e-9,
    )
    assert result["total"]["actual_cost_usd"] == pytest.approx(store.summary()["total_cost_usd"])
    assert result["total"]["calls"] == len(usage_rows)
    for row in result["rows"]:
        mine = [r for r in usage_rows if r["model_name"] == row["key"]]
        assert row["as_model_cost_usd"] == pytest.approx(
            sum(_by_hand(r, price) for r in mine), rel=1e-9
        )
        assert row["input_tokens"] == sum(r["input_tokens"] for r in mine)
    if target == "gpt-4o-mini":  # repricing a model as itself changes nothing
        own = next(r for r in result["rows"] if r["key"] == "gpt-4o-mini")
        assert own["as_model_cost_usd"] == pytest.approx(own["actual_cost_usd"], rel=1e-9)


def test_costs_as_model_table_and_csv(db: Path) -> None:
    table = run_cli("costs", "--db", str(db), "--as-model", "gpt-4o-mini", "--by", "agent")
    assert table.returncode == 0
    assert "Re-priced as gpt-4o-mini" in table.stdout and "%" in table.stdout
    rows = list(
        csv.DictReader(
            io.StringIO(
                run_cli("costs", "--db", str(db), "--as-model", "gpt-4o", "--format", "csv").stdout
            )
        )
    )
    assert rows and {"key", "actual_cost_usd", "as_model_cost_usd"} <= set(rows[0])


def test_costs_as_unknown_model_is_a_bad_argument(db: Path) -> None:
    assert_clean_error(
        run_cli("costs", "--db", str(db), "--as-model", "no-such-model-xyz"), 2, "no known price"
    )


# -- prices ----------------------------------------------------------------------------------
def test_prices_from_the_catalog() -> None:
    data = run_json("prices", "claude-3-5-haiku", "--provider", "anthropic")
    expected = default_catalog().resolve("claude-3-5-haiku", "anthropic")
    assert expected is not None
    assert data["price"]["input_mtok"] == expected.input_mtok
    assert data["price"]["output_mtok"] == expected.output_mtok
    assert data["price"]["source"] == "catalog"
    table = run_cli("prices", "gpt-4o-mini")
    assert table.returncode == 0 and "input" in table.stdout and "$0.15" in table.stdout


def test_prices_with_overrides_file(tmp_path: Path) -> None:
    overrides = tmp_path / "prices.json"
    overrides.write_text(json.dumps({"my-finetune": {"input": 1.5, "output": 6.0}}))
    data = run_json("prices", "my-finetune", "--overrides", str(overrides))
    assert data["price"]["source"] == "override"
    assert (data["price"]["input_mtok"], data["price"]["output_mtok"]) == (1.5, 6.0)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_clean_error(run_cli("prices", "gpt-4o", "--overrides", str(broken)), 1, "broken.json")


def test_prices_unknown_model() -> None:
    assert_clean_error(run_cli("prices", "no-such-model-xyz"), 1, "no known price")


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nonsense"],
        ["traces", "--since", "last tuesday"],
        ["traces", "--limit", "0"],
        ["traces", "--min-cost", "-1"],
        ["traces", "--min-duration", "fast"],
        ["traces", "--status", "weird"],
        ["costs", "--by", "week"],
        ["ui", "--port", "70000"],
        ["ui", "--budget", "lots"],
        ["ui", "--host", "0.0.0.0"],
        ["ui", "--auth-token", "short"],
        ["export", "--format", "xml"],
        ["run"],
    ],
)
def test_bad_arguments_exit_2(args: list[str], db: Path) -> None:
    result = run_cli(*args, env={"AGENTOS_OBS_DB": str(db)})
    assert result.returncode == 2, (args, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


def test_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    for args in (["traces"], ["costs"], ["traces", "show", "abc"], ["export"], ["ui"]):
        assert_clean_error(run_cli(*args, "--db", str(missing)), 1, "no database", str(missing))
    assert not missing.exists()  # reading never creates a store


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    result = run_cli("traces", "--db", str(garbage))
    assert_clean_error(result, 1, str(garbage))
    assert len(result.stderr.strip().splitlines()) == 1

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (x)")
    assert_clean_error(run_cli("costs", "--db", str(foreign)), 1, "not an agentos-obs span store")

    truncated = tmp_path / "truncated.db"
    source = tmp_path / "source.db"
    run_cli("demo", "--fast", "--format", "json", "--db", str(source))
    truncated.write_bytes(source.read_bytes()[:4096])  # header and first page only
    result = run_cli("traces", "--db", str(truncated))
    assert result.returncode == 1 and "Traceback" not in result.stderr


# -- export ----------------------------------------------------------------------------------
def test_export_jsonl_round_trips(db: Path, store: SQLiteStore, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    result = run_cli("export", "--db", str(db), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "exported 8 traces" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    for line in lines:
        stored = store.get_trace(line["trace_id"])
        assert stored is not None
        assert line["span_count"] == len(line["spans"]) == stored["span_count"]
        # usage totals survive the rebuild (innermost-only rule included)
        assert line["total_tokens"] == stored["total_tokens"]
        assert line["total_cost_usd"] == pytest.approx(stored["cost_usd"])
        assert line["status"] == stored["status"]
        assert line["total_duration_ms"] == pytest.approx(stored["duration_ms"])
    assert [line["start_time"] for line in lines] == sorted(line["start_time"] for line in lines)

    to_stdout = run_cli("export", "--db", str(db), "--since", "1h", "--limit", "2")
    assert len(to_stdout.stdout.splitlines()) == 2


def test_export_otlp_to_a_real_receiver(db: Path, store: SQLiteStore) -> None:
    from otlp_receiver import OTLPReceiver

    expected_spans = store.summary()["span_count"]
    with OTLPReceiver() as receiver:
        result = run_cli(
            "export", "--db", str(db), "--format", "otlp", "--endpoint", receiver.endpoint
        )
        assert result.returncode == 0, result.stderr
        assert receiver.wait_for_spans(expected_spans)
        spans = list(receiver.spans)
    assert len(spans) == expected_spans
    stored_ids = {t["trace_id"] for t in store.list_traces(limit=100)}
    assert {s.trace_id for s in spans} == stored_ids
    assert {s.resource.get("service.name") for s in spans} == {"agentos-demo"}
    llm = [s for s in spans if s.attributes.get("gen_ai.usage.input_tokens")]
    assert (
        sum(s.attributes["gen_ai.usage.input_tokens"] for s in llm)
        == store.summary()["input_tokens"]
    )


def test_export_otlp_endpoint_down_is_reported(db: Path) -> None:
    result = run_cli(
        "export",
        "--db",
        str(db),
        "--format",
        "otlp",
        "--endpoint",
        "http://127.0.0.1:9/v1/traces",
        env={"OTEL_EXPORTER_OTLP_TIMEOUT": "2"},
    )
    assert_clean_error(result, 1, "could not be delivered")


# -- run -------------------------------------------------------------------------------------
APP = textwrap.dedent(
    """
    import sys
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("human", "hi {name}")])
    chain = prompt | FakeListChatModel(responses=["hello"])
    print(chain.invoke({"name": "world"}).content)
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """
)


def test_run_instruments_an_unmodified_program(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    db = tmp_path / "run.db"
    result = run_cli(
        "run", "--db", str(db), "--service-name", "my-app", "--", sys.executable, str(app)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"
    with _open(db) as store:
        (trace,) = store.list_traces()
        assert trace["name"] == "RunnableSequence"
        assert trace["service_name"] == "my-app"
        names = {s["name"] for s in store.get_trace(trace["trace_id"])["spans"]}
    assert {"ChatPromptTemplate", "FakeListChatModel"} <= names


def test_run_returns_the_child_exit_code(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    result = run_cli("run", "--db", str(tmp_path / "x.db"), "--", sys.executable, str(app), "3")
    assert result.returncode == 3
    assert_clean_error(run_cli("run", "--", "/no/such/program"), 127, "command not found")


def test_run_keeps_an_existing_pythonpath_and_sitecustomize(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = '1'\n"
    )
    (site / "helper_mod.py").write_text("VALUE = 42\n")
    script = (
        "import os, helper_mod; print(helper_mod.VALUE, os.environ.get('USER_SITECUSTOMIZE_RAN'))"
    )
    result = run_cli(
        "run",
        "--db",
        str(tmp_path / "x.db"),
        "--",
        sys.executable,
        "-c",
        script,
        env={"PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "1"]


# -- misc ------------------------------------------------------------------------------------
def test_version_and_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("agentos-obs ")
    help_text = run_cli("--help").stdout
    for command in ("demo", "ui", "serve", "traces", "costs", "prices", "export", "run"):
        assert command in help_text


def test_in_process_main_matches(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentos_obs.cli import main

    assert main(["traces", "--db", str(db), "--format", "json", "--limit", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["traces"]) == 1
    assert main(["traces", "show", "zzzz", "--db", str(db)]) == 1
    assert "no trace" in capsys.readouterr().err


def test_demo_in_process_has_no_internal_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Strict mode is on in the test suite: any failure inside agentos_obs during the demo (an
    integration, the store, pricing) re-raises here instead of being logged and counted."""
    from agentos_obs import testing
    from agentos_obs.cli import main

    assert main(["demo", "--fast", "--format", "json", "--db", str(tmp_path / "strict.db")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["trace_count"] == 8
    assert testing.failure_counts() == {}
    assert not testing.dropped_counts()


def test_missing_rich_names_the_extra(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentos_obs.cli import main

    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["costs", "--db", str(db)]) == 1
    assert "pip install 'agentos-obs[cli]'" in capsys.readouterr().err
    # JSON needs no rich
    assert main(["costs", "--db", str(db), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]
