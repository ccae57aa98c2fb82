"""The dashboard in a real browser: ``agentos-obs ui`` as a subprocess on a free port, over a
store filled by ``agentos-obs demo``, driven with Playwright through Debian's Chromium.

Waits use Playwright's ``expect`` (never ``wait_for_function`` with a string: the page's
Content-Security-Policy forbids eval, as it should). Every test leaves a screenshot in
``artifacts/ui/``; with ``AGENTOS_OBS_UPDATE_SCREENSHOTS=1`` (``make screenshots``) the
overview and trace pages also replace the committed ``docs/screenshots/`` the README shows
(so a plain test run leaves the work tree clean).

Without Chromium the browser tests skip (under ``CI=true`` they fail); the check that the
README's screenshots are committed needs no browser and always runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import agentos_obs.attributes as attr
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer, TracerConfig
from conftest import require_binary
from store_fixtures import fill_store

needs_browser = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "ui"
SCREENSHOTS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("AGENTOS_OBS_UPDATE_SCREENSHOTS") == "1"
# The pages the README shows, as the browser tests save them.
README_SCREENSHOTS = ("overview.png", "trace.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOKEN = "browser-test-token-42"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE_PROMPT = '<script>window.__xss=1</script><img src=x onerror="window.__xss=3">'
HOSTILE_NAME = '<img src=x onerror="window.__xss=2">'


def assert_real_png(path: Path) -> None:
    """A PNG with content (a blank or failed capture is a few hundred bytes)."""
    assert path.is_file(), path
    assert path.stat().st_size > 10_000, f"{path}: {path.stat().st_size} bytes"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path


def save_page_screenshot(page: Any, name: str) -> None:
    """Screenshot of the page into artifacts/ (and docs/ for the README's, when asked)."""
    assert name in README_SCREENSHOTS, name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert_real_png(ARTIFACTS / name)
    if UPDATE_DOCS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / name, SCREENSHOTS / name)


def add_hostile_trace(db: Path) -> None:
    """A chat turn whose user pasted HTML: the prompt, the span name and an event carry tags."""
    store = SQLiteStore(db)
    tracer = Tracer(config=TracerConfig(service_name="chat-widget", capture_content=True))
    tracer.add_exporter(store)
    with tracer.start_span("chat_widget", SpanKind.AGENT, attributes={attr.USER_ID: "mallory"}):
        with tracer.start_span(HOSTILE_NAME, SpanKind.LLM) as llm:
            llm.set_attribute(attr.INPUT_VALUE, HOSTILE_PROMPT)
            llm.set_attribute(
                attr.OUTPUT_VALUE, "I can't run scripts, but here is the text you sent."
            )
            llm.add_event("note", {"html": "<b onmouseover=window.__xss=4>bold</b>"})
            tracer.record_llm_call("gpt-4o-mini", 42, 12)
    store.flush()
    store.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "demo.db"
    result = subprocess.run(
        [sys.executable, "-m", "agentos_obs", "demo", "--db", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    add_hostile_trace(path)
    return path


@contextmanager
def serving(db: Path) -> Iterator[str]:
    """``agentos-obs ui`` on a free port over ``db``; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentos_obs", "ui", "--db", str(db), "--port", "0",
         "--auth-token", TOKEN, "--budget", "0.01/day"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(db: Path) -> Iterator[str]:
    with serving(db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser: Any, server: str) -> Any:
    """A page logged in with the token once in the URL (the server sets a cookie and
    redirects to the bare page); its errors and requests are recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    opened.on("request", lambda req: requests.append(req.url))
    opened.goto(f"{server}?token={TOKEN}")
    opened.wait_for_selector("#kpi-traces")
    assert opened.url == server
    opened.errors = errors
    opened.requests = requests
    return opened


@pytest.fixture
def page(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    opened = open_page(browser, server)
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    opened.context.close()
    assert not opened.errors, opened.errors


@pytest.fixture(scope="module")
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore.open_readonly(db)
    yield opened
    opened.close()


def text(page: Any, selector: str) -> str:
    return str(page.inner_text(selector)).strip()


def money(value: str) -> float:
    return float(value.replace("$", "").replace(",", ""))


@needs_browser
def test_overview_shows_the_stores_numbers(page: Any, store: SQLiteStore) -> None:
    summary = store.summary()
    assert text(page, "#kpi-traces .value") == f"{summary['trace_count']:,}"
    assert text(page, "#kpi-traces .detail") == f"{summary['span_count']:,} spans"
    assert text(page, "#kpi-error-rate .value") == f"{summary['error_rate'] * 100:.0f}%"
    assert text(page, "#kpi-error-rate .detail") == "1 failed trace"
    assert money(text(page, "#kpi-cost .value")) == pytest.approx(
        summary["total_cost_usd"], rel=5e-3
    )
    assert text(page, "#kpi-tokens .value") == f"{summary['total_tokens']:,}"
    assert text(page, "#kpi-llm-calls .value") == str(summary["llm_calls"])
    p95 = summary["latency_p95_ms"]
    shown = text(page, "#kpi-p95 .value")
    assert shown == (f"{p95:.0f} ms" if p95 < 1000 else f"{p95 / 1000:.2f} s")

    models = text(page, "#by-model")
    for model in ("gpt-4o-mini", "claude-3-5-haiku-latest", "gpt-4o"):
        assert model in models
    agents = text(page, "#by-agent")
    assert "research_agent" in agents and "support_agent" in agents and "docs_qa" in agents
    assert "mallory" in text(page, "#by-user")
    stages = text(page, "#stages").lower()
    for kind in ("llm", "tool", "retrieval", "agent"):
        assert kind in stages
    assert "$0.01 daily" in text(page, "#budgets")
    # both charts drew bars: traces over time and cost over time
    assert page.locator(".chart svg rect").count() >= 2 * 3
    # nothing was fetched from anywhere but the dashboard itself
    base = page.url.split("#")[0]
    assert all(url.startswith(base) for url in page.requests), page.requests

    save_page_screenshot(page, "overview.png")


@needs_browser
def test_trace_page_has_a_waterfall(page: Any, store: SQLiteStore) -> None:
    (failed,) = store.list_traces(status="error")
    page.click("nav a[data-nav=traces]")
    page.wait_for_selector("#trace-filters")
    page.select_option("#trace-filters select[name=status]", "error")
    page.click("#trace-filters button[type=submit]")
    expect(page.locator("#trace-table tbody tr")).to_have_count(1)
    assert "support_agent" in text(page, "#trace-table")
    page.click("#trace-table tbody tr")
    page.wait_for_selector("#waterfall .wf-bar")
    assert failed["trace_id"] in page.url

    rows = page.locator("#waterfall .wf-row")
    assert rows.count() == failed["span_count"]
    tracks = page.locator("#waterfall .wf-track")
    bars = page.locator("#waterfall .wf-bar")
    for i in range(bars.count()):
        bar, track = bars.nth(i).bounding_box(), tracks.nth(i).bounding_box()
        assert bar["width"] > 0
        assert (
            track["x"] - 0.5 <= bar["x"]
            and bar["x"] + bar["width"] <= track["x"] + track["width"] + 1
        )
    # the root bar spans the whole timeline
    assert bars.nth(0).bounding_box()["width"] >= 0.95 * tracks.nth(0).bounding_box()["width"]

    page.click("#waterfall .wf-row:has-text('get_order_status')")
    detail = text(page, "#span-detail")
    assert "ConnectionError" in detail and "orders service unreachable" in detail
    assert "tool" in detail.lower() and "events" in detail.lower()
    page.click("#waterfall .wf-row:has-text('FakeChatModel')")
    detail = text(page, "#span-detail")
    assert "claude-3-5-haiku-latest" in detail and "tokens" in detail.lower()
    assert "cost" in detail.lower()
    page.click("#waterfall .wf-row:has-text('get_order_status')")

    save_page_screenshot(page, "trace.png")


@needs_browser
def test_span_content_is_shown_as_text_never_run(page: Any, store: SQLiteStore) -> None:
    (hostile,) = store.list_traces(user="mallory")
    page.goto(page.url.split("#")[0] + f"#/trace/{hostile['trace_id']}")
    page.wait_for_selector("#waterfall .wf-row")
    page.click(f"#waterfall .wf-row:has-text('{HOSTILE_NAME[:12]}')")
    page.wait_for_selector("#span-content")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert HOSTILE_PROMPT in text(page, "#span-content")
    assert HOSTILE_NAME in text(page, "#waterfall")
    assert HOSTILE_NAME in text(page, "#span-detail h2")
    assert "<b onmouseover=window.__xss=4>bold</b>" in text(page, "#span-detail")
    # no element was created from the data: one script (app.js), no <img src=x>, no <b>
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("#span-detail b[onmouseover]").count() == 0
    page.hover("#span-detail")
    assert page.evaluate("typeof window.__xss") == "undefined"


@needs_browser
def test_search_and_filter_menus(page: Any) -> None:
    page.goto(page.url.split("#")[0] + "#/traces?search=docs_qa")
    page.wait_for_selector("#trace-table")
    assert page.locator("#trace-table tbody tr").count() == 2
    options = page.locator("#trace-filters select[name=model] option").all_inner_texts()
    assert {"gpt-4o-mini", "claude-3-5-haiku-latest", "gpt-4o"} <= set(options)
    page.fill("#trace-filters input[name=min_duration_ms]", "100000000")
    page.click("#trace-filters button[type=submit]")
    page.wait_for_selector("text=No traces match.")


@needs_browser
def test_overview_follows_new_traces(page: Any, db: Path) -> None:
    before = int(text(page, "#kpi-traces .value").replace(",", ""))
    writer = SQLiteStore(db)
    tracer = Tracer(config=TracerConfig(service_name="late"))
    tracer.add_exporter(writer)
    with tracer.start_span("late_arrival", SpanKind.AGENT):
        tracer.record_llm_call("gpt-4o-mini", 10, 5)
    writer.flush()
    writer.close()
    # the page polls /api/version every 5 s and re-renders when it changes
    expect(page.locator("#kpi-traces .value")).to_have_text(f"{before + 1:,}", timeout=60_000)


@needs_browser
def test_token_is_required_in_the_browser(browser: Any, server: str) -> None:
    context = browser.new_context()
    anonymous = context.new_page()
    response = anonymous.goto(server)
    assert response is not None and response.status == 401
    assert "token" in anonymous.inner_text("body")
    context.close()


BIG_TRACE = 12_500  # spans: 2,000 at once, to 10,000 in the background, then on request


@needs_browser
def test_a_large_trace_loads_progressively(browser: Any, tmp_path: Path) -> None:
    def build(tracer: Tracer) -> None:
        root = tracer.begin_span("big_trace", SpanKind.AGENT, use_context=False)
        for i in range(BIG_TRACE - 1):
            tracer.end_span(tracer.begin_span(f"step {i}", SpanKind.TOOL, parent=root))
        tracer.end_span(root)

    db = tmp_path / "big.db"
    (trace,) = fill_store(db, build)
    with serving(db) as url:
        opened = open_page(browser, url)
        try:
            opened.goto(url + f"#/trace/{trace.trace_id}")
            rows = opened.locator("#waterfall .wf-row")
            more = opened.locator("#waterfall-more")
            expect(rows).to_have_count(10_000, timeout=120_000)
            expect(more).to_contain_text(f"Showing 10,000 of {BIG_TRACE:,} spans")
            assert "12,500" in text(opened, ".trace-meta")
            opened.click("#load-more-spans")
            expect(rows).to_have_count(BIG_TRACE, timeout=120_000)
            expect(more).to_be_empty()
            # every answer was one bounded page: no request asked for the whole trace
            pages = [u for u in opened.requests if f"/api/traces/{trace.trace_id}" in u]
            assert len(pages) == 7 and all("limit=2000" in u for u in pages)
            assert not opened.errors, opened.errors
        finally:
            opened.context.close()


def test_readme_screenshots_are_committed() -> None:
    """The README's images are in the repository, and are the pages the browser tests save
    (so ``make screenshots`` refreshes every one of them). Needs no browser."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"\]\(docs/screenshots/([^)\s]+)\)", readme)
    assert sorted(set(shown)) == sorted(README_SCREENSHOTS)
    for name in README_SCREENSHOTS:
        assert_real_png(SCREENSHOTS / name)
