"""The dashboard's JSON API, /metrics and guard, in-process (Starlette's TestClient) on a
store filled by ``agentos-obs demo``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentos_obs.store import SQLiteStore, StoreReader
from agentos_obs.tracing import SpanKind, Tracer, TracerConfig
from agentos_obs.ui import create_app, parse_budget
from agentos_obs.ui._security import COOKIE_NAME, is_loopback_host
from conftest import require_binary

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui") / "demo.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentos_obs",
            "demo",
            "--fast",
            "--format",
            "json",
            "--db",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore.open_readonly(db)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(db, budgets=[parse_budget("1/day")]), base_url="http://127.0.0.1"
    ) as c:
        yield c


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# -- the API ---------------------------------------------------------------------------------
def test_summary_is_the_stores(client: TestClient, store: SQLiteStore) -> None:
    expected = store.summary()
    summary = get(client, "/api/summary")
    assert summary["trace_count"] == expected["trace_count"] == 8
    assert summary["error_count"] == expected["error_count"] == 1
    assert summary["error_rate"] == pytest.approx(1 / 8)
    assert summary["cost_usd"] == pytest.approx(expected["total_cost_usd"])
    assert summary["total_tokens"] == expected["total_tokens"]
    assert summary["latency_ms"]["p50"] == expected["latency_p50_ms"]
    assert summary["latency_ms"]["p99"] == expected["latency_p99_ms"]
    assert get(client, "/api/summary", since="2000-01-01", until="2000-01-02")["trace_count"] == 0


def test_breakdowns(client: TestClient, store: SQLiteStore) -> None:
    for by in ("model", "agent", "user", "day"):
        data = get(client, "/api/breakdown", by=by)
        assert data["by"] == by
        assert {r["key"]: r["cost_usd"] for r in data["rows"]} == pytest.approx(
            {r["key"]: r["cost_usd"] for r in store.aggregate(by)}
        )
    models = get(client, "/api/breakdown", by="model")["rows"]
    assert sum(r["calls"] for r in models) == store.summary()["llm_calls"]


def test_timeseries_buckets_add_up(client: TestClient, store: SQLiteStore) -> None:
    series = get(client, "/api/timeseries", buckets=12)
    points = series["points"]
    assert len(points) == 12
    assert sum(p["traces"] for p in points) == 8
    assert sum(p["errors"] for p in points) == 1
    assert sum(p["cost_usd"] for p in points) == pytest.approx(store.summary()["total_cost_usd"])
    assert [p["start"] for p in points] == sorted(p["start"] for p in points)
    empty = get(client, "/api/timeseries", since="2000-01-01", until="2000-01-02")
    assert empty == {"bucket_ms": None, "points": []}


def test_stages_inclusive_and_self_time(client: TestClient, store: SQLiteStore) -> None:
    rows = {r["stage"]: r for r in get(client, "/api/stages")["rows"]}
    spans = [
        s for t in store.list_traces(limit=100) for s in store.get_trace(t["trace_id"])["spans"]
    ]
    for kind in {s["kind"] for s in spans}:
        mine = [s for s in spans if s["kind"] == kind]
        assert rows[kind]["count"] == len(mine)
        assert rows[kind]["inclusive"]["total"] == pytest.approx(
            sum(s["duration_ms"] for s in mine)
        )
        assert 0 <= rows[kind]["self"]["total"] <= rows[kind]["inclusive"]["total"] + 1e-9
    # agents spend their time in their children: self is a small part of inclusive
    assert rows["agent"]["self"]["total"] < rows["agent"]["inclusive"]["total"]


def test_self_time_uses_the_union_of_overlapping_children(tmp_path: Path) -> None:
    db = tmp_path / "overlap.db"
    store = SQLiteStore(db)
    tracer = Tracer(config=TracerConfig(service_name="t"))
    tracer.add_exporter(store)
    ms = 1_000_000
    root = tracer.begin_span("root", SpanKind.AGENT, start_time=0 + 10**18)
    # two children running concurrently over [10, 60) and [30, 80) ms, parent [0, 100) ms
    a = tracer.begin_span("a", SpanKind.TOOL, parent=root, start_time=10**18 + 10 * ms)
    b = tracer.begin_span("b", SpanKind.TOOL, parent=root, start_time=10**18 + 30 * ms)
    tracer.end_span(a, end_time=10**18 + 60 * ms)
    tracer.end_span(b, end_time=10**18 + 80 * ms)
    tracer.end_span(root, end_time=10**18 + 100 * ms)
    store.flush()
    store.close()
    with StoreReader(db) as reader:
        rows = {r["stage"]: r for r in reader.stages()}
    assert rows["agent"]["self"]["total"] == pytest.approx(30.0)  # 100 - union(10..80)
    assert rows["tool"]["self"]["total"] == pytest.approx(100.0)


def test_traces_filters_and_paging(client: TestClient, store: SQLiteStore) -> None:
    page = get(client, "/api/traces", limit=5)
    assert len(page["traces"]) == 5 and page["has_more"] is True
    rest = get(client, "/api/traces", limit=5, offset=5)
    assert len(rest["traces"]) == 3 and rest["has_more"] is False
    ids = [t["trace_id"] for t in page["traces"] + rest["traces"]]
    assert ids == [t["trace_id"] for t in store.list_traces(limit=100)]
    assert [t["name"] for t in get(client, "/api/traces", status="error")["traces"]] == [
        "support_agent"
    ]
    assert {t["name"] for t in get(client, "/api/traces", model="gpt-4o")["traces"]} == {"docs_qa"}
    assert {t["user_id"] for t in get(client, "/api/traces", user="alice")["traces"]} == {"alice"}
    assert get(client, "/api/traces", min_duration_ms=10**9)["traces"] == []
    assert get(client, "/api/traces", search="docs_qa")["traces"]
    options = get(client, "/api/filters")
    assert set(options["models"]) == {"gpt-4o-mini", "claude-3-5-haiku-latest", "gpt-4o"}
    assert {"research_agent", "support_agent", "docs_qa"} <= set(options["agents"])


def test_one_trace(client: TestClient, store: SQLiteStore) -> None:
    (failed,) = store.list_traces(status="error")
    data = get(client, f"/api/traces/{failed['trace_id'][:12]}")
    assert data["trace"]["trace_id"] == failed["trace_id"]
    assert data["trace"]["start_ms"] == pytest.approx(failed["start_time"] / 1e6)
    spans = data["spans"]
    assert len(spans) == failed["span_count"]
    tool = next(s for s in spans if s["name"] == "get_order_status")
    assert tool["status"] == "error"
    assert tool["attributes"]["error.type"] == "ConnectionError"
    assert any(e["name"] == "exception" for e in tool["events"])
    llm = next(s for s in spans if s["kind"] == "llm")
    assert llm["model_name"] == "claude-3-5-haiku-latest" and llm["cost_usd"] > 0
    assert client.get("/api/traces/ffffffffffffffff").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/summary?since=someday",
        "/api/traces?min_cost=-1",
        "/api/traces?min_cost=abc",
        "/api/traces?status=weird",
        "/api/traces?limit=nan",
        "/api/breakdown?by=week",
        "/api/timeseries?buckets=x",
    ],
)
def test_bad_parameters_are_400(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert "error" in response.json()


def test_budgets(client: TestClient, store: SQLiteStore) -> None:
    (budget,) = get(client, "/api/budgets")["budgets"]
    assert budget["limit_usd"] == 1.0 and budget["period"] == "daily"
    # the demo ran moments ago: today's spend is all of it (unless midnight UTC just passed)
    assert 0 < budget["spent_usd"] <= store.summary()["total_cost_usd"] + 1e-12
    with pytest.raises(ValueError):
        parse_budget("10/fortnight")
    assert parse_budget("$200/month").period == "monthly"
    assert parse_budget("50").period is None


def test_metrics_are_store_derived(client: TestClient, store: SQLiteStore) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    summary = store.summary()
    assert f'agentos_store_traces{{outcome="failed"}} {float(summary["error_count"])}' in text
    assert f"agentos_store_spans {float(summary['span_count'])}" in text
    for row in store.aggregate("model"):
        assert f'agentos_store_llm_calls{{model="{row["key"]}"}} {float(row["llm_calls"])}' in text
    openmetrics = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_metrics_pass_promtool(client: TestClient, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=client.get("/metrics").text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pages_and_assets(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200 and "static/app.js" in index.text
    for asset in ("app.js", "style.css", "favicon.svg"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and response.content
    # everything ships in the package: the page references nothing outside it
    assert "http://" not in index.text and "https://" not in index.text
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../server.py").status_code == 404


def test_concurrent_requests(client: TestClient) -> None:
    paths = ["/api/summary", "/api/traces", "/api/stages", "/api/breakdown?by=agent", "/metrics"]

    def fetch(i: int) -> int:
        return client.get(paths[i % len(paths)]).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(fetch, range(200))) == {200}


# -- read-only -------------------------------------------------------------------------------
def test_the_dashboard_never_writes(db: Path, client: TestClient) -> None:
    before = {
        p.name: p.stat().st_mtime_ns for p in db.parent.iterdir() if p.name.startswith(db.name)
    }
    before_bytes = db.read_bytes()
    for path in ("/", "/api/summary", "/api/traces", "/api/stages", "/metrics"):
        client.get(path)
    assert db.read_bytes() == before_bytes
    assert db.stat().st_mtime_ns == before[db.name]
    reader = StoreReader(db)
    try:
        reader.version()  # opens our own read-only connection
        assert reader.store.readonly
        assert reader._conn is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM traces")
    finally:
        reader.close()


def test_new_traces_change_the_version(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    writer = SQLiteStore(db, flush_interval_s=0.05)
    tracer = Tracer(config=TracerConfig(service_name="live"))
    tracer.add_exporter(writer)
    with tracer.start_span("first", SpanKind.AGENT):
        pass
    writer.flush()
    with TestClient(create_app(db), base_url="http://127.0.0.1") as c:
        first = get(c, "/api/version")
        with tracer.start_span("second", SpanKind.AGENT):
            pass
        writer.flush()
        second = get(c, "/api/version")
        assert second["trace_count"] == first["trace_count"] + 1
        assert second["version"] != first["version"]
        assert [t["name"] for t in get(c, "/api/traces")["traces"]] == ["second", "first"]
    writer.close()


# -- the guard -------------------------------------------------------------------------------
def test_host_header_must_be_loopback(client: TestClient) -> None:
    assert client.get("/api/summary", headers={"host": "evil.example:8686"}).status_code == 421
    for host in ("localhost:8686", "127.0.0.1", "[::1]:8686", "127.0.0.2"):
        assert client.get("/api/summary", headers={"host": host}).status_code == 200, host
    assert is_loopback_host("::1") and not is_loopback_host("0.0.0.0")


@pytest.fixture(scope="module")
def guarded(db: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(db, auth_token=TOKEN, check_host=False), base_url="http://10.1.2.3"
    ) as c:
        yield c


@pytest.mark.parametrize("path", ["/", "/api/summary", "/api/traces", "/static/app.js", "/metrics"])
def test_token_required_everywhere(guarded: TestClient, path: str) -> None:
    guarded.cookies.clear()
    assert guarded.get(path).status_code == 401
    assert guarded.get(path, headers={"authorization": "Bearer wrong-token-000"}).status_code == 401
    assert guarded.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get(path, headers={"x-agentos-token": TOKEN}).status_code == 200
    assert guarded.get(path, headers={"cookie": f"{COOKIE_NAME}={TOKEN}"}).status_code == 200
    assert guarded.get(path, headers={"cookie": 'bad"cookie; =;'}).status_code == 401


def test_token_in_url_sets_a_cookie_and_is_removed(guarded: TestClient) -> None:
    guarded.cookies.clear()
    response = guarded.get(f"/api/traces?limit=2&token={TOKEN}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/api/traces?limit=2"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    followed = guarded.get(
        response.headers["location"], headers={"cookie": f"{COOKIE_NAME}={TOKEN}"}
    )
    assert followed.status_code == 200 and len(followed.json()["traces"]) == 2
    assert guarded.get("/?token=nope", follow_redirects=False).status_code == 401


def test_ui_refuses_an_open_bind_without_token(db: Path) -> None:
    env = {**os.environ}
    env.pop("AGENTOS_OBS_UI_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "agentos_obs", "ui", "--db", str(db), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "requires a token" in result.stderr and "Traceback" not in result.stderr
