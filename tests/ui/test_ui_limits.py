"""Bounded work per request and bad input at the edges of the JSON API (issue 11), on real
SQLite files through the real Starlette app: out-of-range values are 400s, a large trace
and a long breakdown come a page at a time with totals, the store-derived /metrics has a
bounded number of series, and the UI package imports nothing from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentos_obs.tracing import SpanKind, Tracer
from agentos_obs.ui import create_app
from agentos_obs.ui._metrics import MAX_MODEL_LABELS
from conftest import require_binary
from store_fixtures import fill_store, one_call_trace

BIG_TRACE_SPANS = 20_000
MODELS = MAX_MODEL_LABELS + 150
USERS = 1_500


def _build(tracer: Tracer) -> None:
    root = tracer.begin_span("big", SpanKind.AGENT, use_context=False)
    for i in range(BIG_TRACE_SPANS - 1):
        step = tracer.begin_span(
            f"step {i}", SpanKind.TOOL, parent=root, attributes={"payload": "x" * 200}
        )
        tracer.end_span(step)
    tracer.end_span(root)
    for i in range(MODELS):  # one call per model, none of them priced
        one_call_trace(tracer, "m", model=f"model-{i:04d}", input_tokens=10 + i, user=None)
    for i in range(USERS):
        one_call_trace(tracer, "u", user=f"user-{i:05d}", input_tokens=100 + i)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limits") / "limits.db"
    fill_store(path, _build)
    return path


@pytest.fixture(scope="module")
def client(db: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db), base_url="http://127.0.0.1") as c:
        yield c


def ok(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/traces?since=99999999999d",
        "/api/traces?until=99999999999w",
        "/api/traces?limit=99999999999999999999",
        "/api/traces?offset=99999999999999999999",
        "/api/summary?since=99999999999d",
        "/api/breakdown?by=user&until=99999999999w",
        "/api/breakdown?by=user&limit=99999999999999999999",
        "/api/breakdown?by=user&offset=99999999999999999999",
        "/api/timeseries?since=1" + "0" * 400 + "s",
        "/api/stages?since=99999999999d",
        "/api/filters?until=99999999999w",
        "/api/traces?limit=1.5",
        "/api/traces?limit=-1",
        "/api/traces?min_cost=1e999",
        "/api/traces?search=" + "x" * 5000,
    ],
)
def test_out_of_range_values_are_400_with_an_error(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]


def test_far_absolute_times_are_fine(client: TestClient) -> None:
    everything = ok(client, "/api/summary")["trace_count"]
    assert ok(client, "/api/summary", since="0001-01-01", until="9999-12-31")["trace_count"] == (
        everything
    )
    assert ok(client, "/api/traces", until="9999-12-31", limit=1)["has_more"] is True


def test_a_large_trace_comes_a_page_of_spans_at_a_time(client: TestClient) -> None:
    (big,) = ok(client, "/api/traces", search="big", limit=5)["traces"]
    assert big["span_count"] == BIG_TRACE_SPANS
    first = client.get(f"/api/traces/{big['trace_id']}")
    assert first.status_code == 200
    assert len(first.content) < 2_000_000  # was the whole trace: ~100 MB at 200k spans
    page = first.json()
    assert page["span_total"] == BIG_TRACE_SPANS and page["trace"]["span_count"] == BIG_TRACE_SPANS
    assert len(page["spans"]) == page["limit"] < BIG_TRACE_SPANS
    ids = [s["span_id"] for s in page["spans"]]
    while page["next"] is not None:
        page = ok(client, f"/api/traces/{big['trace_id']}", after=page["next"], limit=5000)
        assert len(page["spans"]) <= 5000
        ids += [s["span_id"] for s in page["spans"]]
    assert len(ids) == len(set(ids)) == BIG_TRACE_SPANS
    for bad in ({"after": "garbage"}, {"limit": "0"}, {"limit": "10001"}):
        response = client.get(f"/api/traces/{big['trace_id']}", params=bad)
        assert response.status_code == 400 and "error" in response.json()


def test_breakdown_rows_are_paged_with_totals(client: TestClient) -> None:
    first = ok(client, "/api/breakdown", by="user")
    assert len(first["rows"]) == first["limit"] == 100
    assert first["total_rows"] == USERS + 1  # the model traces have no user
    assert first["has_more"] is True
    rows = []
    offset = 0
    while True:
        page = ok(client, "/api/breakdown", by="user", limit=1000, offset=offset)
        rows += page["rows"]
        assert page["totals"] == first["totals"]
        if not page["has_more"]:
            break
        offset += 1000
    assert len(rows) == USERS + 1 == len({r["key"] for r in rows})
    assert first["totals"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert first["totals"]["calls"] == sum(r["calls"] for r in rows)
    summary = ok(client, "/api/summary")
    assert first["totals"]["calls"] == summary["llm_calls"]
    assert first["totals"]["cost_usd"] == pytest.approx(summary["cost_usd"])


def _series(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        match = re.match(rf'^{name}\{{model="([^"]*)"\}} (\S+)$', line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_metrics_cap_model_labels_and_use_summary_quantiles(client: TestClient) -> None:
    text = client.get("/metrics").text
    calls = _series(text, "agentos_store_llm_calls")
    assert len(calls) == MAX_MODEL_LABELS + 1 and "other" in calls
    summary = ok(client, "/api/summary")
    assert sum(calls.values()) == summary["llm_calls"]  # nothing lost in the overflow
    cost = _series(text, "agentos_store_cost_usd")
    assert sum(cost.values()) == pytest.approx(summary["cost_usd"])
    # labels go to the costliest models first (gpt-4o-mini: the only priced one), then the
    # most called, then by name; the overflow holds the rest
    assert "gpt-4o-mini" in calls and cost["gpt-4o-mini"] == max(cost.values())
    assert "model-0000" in calls and f"model-{MODELS - 1:04d}" not in calls
    assert calls["other"] == MODELS + 1 - MAX_MODEL_LABELS
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) < 8 * (MAX_MODEL_LABELS + 1) + 20
    assert "percentile=" not in text
    for q in ("0.5", "0.95", "0.99"):
        assert f'agentos_store_trace_duration_seconds{{quantile="{q}"}}' in text
    assert "# TYPE agentos_store_trace_duration_seconds summary" in text
    count = f"agentos_store_trace_duration_seconds_count {float(summary['trace_count'])}"
    assert count in text


def test_capped_metrics_pass_promtool(client: TestClient) -> None:
    promtool = require_binary("promtool")
    for accept in ("text/plain", "application/openmetrics-text"):
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=client.get("/metrics", headers={"accept": accept}).text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_an_unreadable_store_is_a_503(tmp_path: Path) -> None:
    db = tmp_path / "gone.db"
    fill_store(db, lambda t: one_call_trace(t, "x"))
    app = create_app(db)
    db.write_bytes(os.urandom(16384))  # replaced under the running dashboard
    with TestClient(app, base_url="http://127.0.0.1") as c:
        response = c.get("/api/filters")
        assert response.status_code == 503
        assert str(db) in response.json()["error"]


def test_the_ui_package_imports_nothing_from_the_cli() -> None:
    probe = (
        "import sys, agentos_obs.ui._app, agentos_obs.ui._metrics; "
        "print(sorted(m for m in sys.modules if m.startswith('agentos_obs.cli')))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"
