"""Upgrading a span store written by the schema-2 release (``data/release-v2.db``, made by
that release's code from a LangChain chain and a two-service trace): every trace and span
kept, unchanged in every column it had; the rollups built from them answer what the
release's SQL answered over its rows."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import agentos_obs.store._schema as _store_schema
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer

FIXTURE = Path(__file__).with_name("data") / "release-v2.db"


def rows_of(path: Path, sql: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def columns(path: Path, table: str) -> list[str]:
    return [r["name"] for r in rows_of(path, f"PRAGMA table_info({table})")]


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "release-v2.db"
    shutil.copy(FIXTURE, path)
    return path


def test_the_fixture_is_a_release_v2_file() -> None:
    conn = sqlite3.connect(f"{FIXTURE.as_uri()}?mode=ro", uri=True)
    try:
        assert _store_schema.read_version(conn) == 2
        assert conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 6
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 22
    finally:
        conn.close()


def test_a_release_v2_store_upgrades_keeping_every_trace_and_span(old_file: Path) -> None:
    trace_columns = columns(old_file, "traces")
    span_columns = columns(old_file, "spans")
    traces_before = rows_of(old_file, "SELECT * FROM traces ORDER BY trace_id")
    spans_before = rows_of(old_file, "SELECT * FROM spans ORDER BY trace_id, span_id")
    # What the release's SQL answered, from its own rows.
    calls_by_model = {
        r["model_name"]: r
        for r in rows_of(
            old_file,
            "SELECT model_name, COUNT(*) AS calls, TOTAL(cost_usd) AS cost, "
            "SUM(input_tokens) AS input_tokens FROM spans WHERE llm_call = 1 GROUP BY model_name",
        )
    }
    (totals,) = rows_of(
        old_file,
        "SELECT COUNT(*) AS traces, TOTAL(span_count) AS spans, TOTAL(llm_calls) AS calls, "
        "TOTAL(cost_usd) AS cost, SUM(status IN ('error', 'timeout')) AS errors, "
        "COUNT(DISTINCT user_id) AS users, COUNT(DISTINCT session_id) AS sessions FROM traces",
    )

    with SQLiteStore(old_file) as store:
        assert store.schema_version == _store_schema.SCHEMA_VERSION >= 3
        assert store.count_traces() == 6

    # Every old row is still there, unchanged in every column the release had.
    after_traces = rows_of(
        old_file, f"SELECT {', '.join(trace_columns)} FROM traces ORDER BY trace_id"
    )
    assert after_traces == traces_before
    after_spans = rows_of(
        old_file, f"SELECT {', '.join(span_columns)} FROM spans ORDER BY trace_id, span_id"
    )
    assert after_spans == spans_before
    # Each trace's spans are one key range now, in start order.
    for trace in rows_of(old_file, "SELECT trace_key, trace_id FROM traces"):
        keys = rows_of(
            old_file,
            f"SELECT span_key >> 24 AS k FROM spans WHERE trace_id = '{trace['trace_id']}'",
        )
        assert {k["k"] for k in keys} == {trace["trace_key"]}

    with SQLiteStore.open_readonly(old_file) as store:
        summary = store.summary()
        assert summary["trace_count"] == totals["traces"] == 6
        assert summary["span_count"] == totals["spans"] == 22
        assert summary["llm_calls"] == totals["calls"]
        assert summary["total_cost_usd"] == pytest.approx(totals["cost"])
        assert summary["error_count"] == totals["errors"]
        assert summary["users"] == totals["users"]
        assert summary["sessions"] == totals["sessions"]
        assert summary["running_traces"] == summary["incomplete_traces"] == 0
        models = {r["key"]: r for r in store.aggregate("model")}
        assert set(models) == set(calls_by_model)
        for name, old in calls_by_model.items():
            assert models[name]["llm_calls"] == old["calls"]
            assert models[name]["cost_usd"] == pytest.approx(old["cost"])
            assert models[name]["input_tokens"] == old["input_tokens"]
        assert {r["stage"] for r in store.stages()} >= {"chain", "llm", "agent", "tool"}
        merged = [r for r in store.list_traces() if r["name"] == "frontdesk"]
        assert len(merged) == 1 and merged[0]["span_count"] == 4
        assert merged[0]["agents"] == ["backend", "frontdesk"]
        assert {tuple(r["models"]) for r in store.list_traces(model="gpt-4o-mini")} >= {
            ("gpt-4o-mini",)
        }


def test_an_upgraded_file_takes_new_spans_live(old_file: Path) -> None:
    with SQLiteStore(old_file, flush_interval_s=0.02) as store:
        tracer = Tracer("new")
        store.attach(tracer)
        with tracer.start_span("after-upgrade", SpanKind.AGENT):
            with tracer.start_span("step", SpanKind.TOOL):
                pass
            assert store.flush()
            assert store.count_traces(status="running") == 1
        assert store.flush()
        assert store.count_traces() == 7
        assert store.summary()["span_count"] == 24
