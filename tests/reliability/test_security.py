"""Security across every place data goes: secrets never recorded, content capture off by
default really off, and the dashboard serving recorded data safely behind its checks.

One real pipeline per test — a LangChain app (chat model, tool, retriever) and a LlamaIndex
tool call, traced by the integrations into the full stack with the SQLite store, the OTLP
exporter (to a real receiver on 127.0.0.1), the JSONL exporter and correlated logging —
then every sink is searched as bytes for the values that must not be there: the store's
database and WAL files, the OTLP requests as received, the JSONL file, the log output,
the Prometheus exposition, the dashboard aggregates, the traces in memory and the web
dashboard's JSON API.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool

from agentos_obs import TracerConfig, create_observability_stack
from agentos_obs.exporters.jsonl import JSONLExporter
from agentos_obs.exporters.otlp import OTLPExporter
from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.logs import correlate_logging
from agentos_obs.store import SQLiteStore
from agentos_obs.testing import FakeChatModel, FakeRetriever
from otlp_receiver import OTLPReceiver

# Credentials in every shape a user passes them. Each is unique so a hit names its path.
API_KEY = "sk-proj-MODELKEY0123456789abcdefXYZ"  # the model's api_key field
HEADER_TOKEN = "HEADERTOKEN0123456789abcdefXYZ"  # Authorization header in bound kwargs
TOOL_KEY = "sk-TOOLARG0123456789abcdefghXYZ"  # an api_key argument of a tool call
PASSWORD = "hunter2-PLAIN-PASSWORD-VALUE"  # by key name only: no credential shape
METADATA_KEY = "sk-ant-METADATA0123456789abcdefXYZ"  # run metadata
OTLP_HEADER = "OTLPHEADERSECRET0123456789XYZ"  # the exporter's own auth header
LI_TOOL_KEY = "sk-LLAMATOOL0123456789abcdefXYZ"  # a LlamaIndex tool argument
SECRETS = [API_KEY, HEADER_TOKEN, TOOL_KEY, PASSWORD, METADATA_KEY, OTLP_HEADER, LI_TOOL_KEY]

# Content that must stay out of every sink unless capture is switched on.
PROMPT = "PROMPT-CANARY-7f3a"
REPLY = "REPLY-CANARY-9b2c"
DOCUMENT = "DOCUMENT-CANARY-4d1e"
TOOL_OUTPUT = "TOOLOUT-CANARY-2a8f"
LI_INPUT = "LLAMAINPUT-CANARY-6c0b"
CONTENT = [PROMPT, REPLY, DOCUMENT, TOOL_OUTPUT, LI_INPUT]


@tool
def lookup(city: str, api_key: str, password: str) -> str:
    """Look a city up in a paid API."""
    return f"{TOOL_OUTPUT} for {city}"


def li_weather(city: str, api_key: str = "") -> str:
    """The weather in a city (a paid API)."""
    return f"{TOOL_OUTPUT}: sunny in {city}"


@dataclass
class Sinks:
    """Everything the pipeline wrote, as text or bytes to search."""

    db: Path
    jsonl: Path
    logs: io.StringIO
    receiver: OTLPReceiver
    stack: Any
    traces: list[Any] = field(default_factory=list)

    def contents(self) -> dict[str, bytes]:
        db_bytes = b"".join(p.read_bytes() for p in (self.db, Path(f"{self.db}-wal")) if p.exists())
        # Request bodies: the exporter's own Authorization header is meant for the backend.
        otlp = b"".join(r.SerializeToString() for r in self.receiver.requests)
        memory = json.dumps([t.to_dict() for t in self.traces], default=str)
        dashboard = json.dumps(
            [self.stack.dashboard.get_summary(), self.stack.dashboard.recent_traces()],
            default=str,
        )
        return {
            "sqlite store": db_bytes,
            "OTLP export": otlp,
            "JSONL export": self.jsonl.read_bytes(),
            "logs": self.logs.getvalue().encode(),
            "prometheus metrics": self.stack.metrics.to_prometheus_text().encode(),
            "dashboard": dashboard.encode(),
            "traces in memory": memory.encode(),
            "web dashboard API": self.ui_api(),
        }

    def ui_api(self) -> bytes:
        from starlette.testclient import TestClient

        from agentos_obs.ui import create_app

        with TestClient(create_app(self.db), base_url="http://127.0.0.1") as client:
            listing = client.get("/api/traces?limit=500")
            assert listing.status_code == 200, listing.text
            bodies = [listing.content]
            for item in listing.json()["traces"]:
                one = client.get(f"/api/traces/{item['trace_id']}")
                assert one.status_code == 200
                bodies.append(one.content)
            for path in ("/api/summary", "/api/filters", "/api/breakdown?by=user", "/metrics"):
                bodies.append(client.get(path).content)
        return b"\n".join(bodies)


def run_pipeline(tmp_path: Path, receiver: OTLPReceiver, config: TracerConfig | None) -> Sinks:
    import agentos_obs.integrations.llama_index as li_integration

    logs = io.StringIO()
    handler_installed = correlate_logging(stream=logs, level=logging.DEBUG)
    stack = create_observability_stack("security", config=config)
    sinks = Sinks(tmp_path / "traces.db", tmp_path / "traces.jsonl", logs, receiver, stack)
    store = SQLiteStore(sinks.db, flush_interval_s=0.01)
    jsonl = JSONLExporter(sinks.jsonl, flush_interval_s=0.01)
    otlp = OTLPExporter(
        endpoint=receiver.endpoint,
        headers={"Authorization": f"Bearer {OTLP_HEADER}"},
        flush_interval_s=0.01,
    )
    for exporter in (store, jsonl, otlp):
        stack.tracer.add_exporter(exporter)
    stack.tracer.add_exporter(sinks.traces.append, sync=True)
    try:
        handler = AgentOSCallbackHandler(tracer=stack.tracer)
        model = FakeChatModel(api_key=API_KEY, replies=[REPLY]).bind(
            extra_headers={"Authorization": f"Bearer {HEADER_TOKEN}"}
        )
        retriever = FakeRetriever(documents=[Document(page_content=f"{DOCUMENT} Paris")])
        app: Runnable[Any, str] = (
            RunnableLambda(
                lambda q: {
                    "question": q["question"],
                    "docs": retriever.invoke("Paris"),
                    "tool": lookup.invoke(
                        {"city": "Paris", "api_key": TOOL_KEY, "password": PASSWORD}
                    ),
                }
            )
            | ChatPromptTemplate.from_messages([("human", "{question} {docs} {tool}")])
            | model
            | StrOutputParser()
        )
        answer = app.invoke(
            {"question": PROMPT},
            config={
                "callbacks": [handler],
                "metadata": {"user_id": "u1", "api_key": METADATA_KEY, "password": PASSWORD},
            },
        )
        assert answer == REPLY
        from llama_index.core.tools import FunctionTool

        li_integration.instrument(tracer=stack.tracer)
        try:
            li_tool = FunctionTool.from_defaults(fn=li_weather, name="li_weather")
            li_tool.call(city=LI_INPUT, api_key=LI_TOOL_KEY)
        finally:
            li_integration.uninstrument()
        # A failing exporter call logs once: its log line must carry no secret either.
        for exporter in (store, jsonl, otlp):
            assert exporter.flush(timeout_s=30)
        assert receiver.wait_for_spans(sum(len(t.spans) for t in sinks.traces))
    finally:
        store.close()
        jsonl.close()
        otlp.shutdown()
        logging.getLogger().removeHandler(handler_installed)
    assert len(sinks.traces) == 2
    return sinks


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


@pytest.fixture
def no_capture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AGENTOS_OBS_CAPTURE_CONTENT",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ):
        monkeypatch.delenv(name, raising=False)


def hits(sinks: Sinks, needles: list[str]) -> list[str]:
    found = []
    for sink, data in sinks.contents().items():
        for needle in needles:
            if needle.encode() in data:
                found.append(f"{needle} in {sink}")
    return found


def test_secrets_are_never_recorded_even_with_content_capture_on(
    tmp_path: Path, receiver: OTLPReceiver
) -> None:
    sinks = run_pipeline(tmp_path, receiver, TracerConfig(capture_content=True))
    # Capture is on: prompts, replies, documents, tool inputs and outputs are recorded (so
    # the search below does find what is present), the credentials among them redacted...
    contents = sinks.contents()
    for sink in ("sqlite store", "OTLP export", "JSONL export", "web dashboard API"):
        assert all(c.encode() in contents[sink] for c in CONTENT), sink
        assert b"[REDACTED]" in contents[sink], sink
    # ...and the credentials are nowhere.
    assert hits(sinks, SECRETS) == []
    # The exporter's own credential did reach the backend, in the header only.
    assert receiver.headers[0]["authorization"] == f"Bearer {OTLP_HEADER}"


def test_content_capture_off_by_default_is_really_off(
    tmp_path: Path, receiver: OTLPReceiver, no_capture_env: None
) -> None:
    sinks = run_pipeline(tmp_path, receiver, None)
    assert sinks.stack.tracer.config.capture_content is False
    assert hits(sinks, CONTENT + SECRETS) == []
    # What is recorded without content: the structure, models and usage.
    llm = next(s for t in sinks.traces for s in t.spans if s.kind.value == "llm")
    assert llm.model_name and llm.input_tokens > 0


def test_the_env_switch_turns_capture_on(
    tmp_path: Path, receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    sinks = run_pipeline(tmp_path, receiver, None)
    assert hits(sinks, [PROMPT]) != []  # the switch works, so "off" above means off
    assert hits(sinks, SECRETS) == []


# -- the web dashboard -------------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    """A store holding a trace whose every free-text field is an HTML/JS payload."""
    from agentos_obs import SpanKind, Tracer

    tracer = Tracer(XSS)
    path = tmp_path / "xss.db"
    with SQLiteStore(path) as store:
        tracer.add_exporter(store)
        with tracer.start_span(XSS, SpanKind.AGENT, {"user.id": XSS, "session.id": XSS}):
            with tracer.start_span(XSS, SpanKind.LLM) as span:
                span.set_attribute(XSS, XSS)
                tracer.record_llm_call(XSS, 10, 2)
                span.add_event(XSS, {XSS: XSS})
        store.flush()
    return path


def test_dashboard_serves_hostile_data_as_inert_json(hostile_store: Path) -> None:
    from starlette.testclient import TestClient

    from agentos_obs.ui import create_app

    with TestClient(create_app(hostile_store), base_url="http://127.0.0.1") as client:
        listing = client.get("/api/traces")
        trace_id = listing.json()["traces"][0]["trace_id"]
        for path in ("/api/traces", f"/api/traces/{trace_id}", "/api/filters", "/api/summary"):
            response = client.get(path)
            assert response.status_code == 200
            # Data only ever goes out as JSON, which browsers must not sniff as HTML...
            assert response.headers["content-type"].startswith("application/json")
            assert response.headers["x-content-type-options"] == "nosniff"
            # ...under a policy that forbids inline and foreign script.
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        detail = client.get(f"/api/traces/{trace_id}").json()
        names = {s["name"] for s in detail["spans"]}
        assert XSS in names  # stored and returned as data, exactly
        page = client.get("/")
        assert XSS not in page.text  # the page itself never embeds recorded data


def test_dashboard_pages_render_data_through_text_only() -> None:
    """The page's script never turns data into markup: no HTML sinks, no inline script."""
    from agentos_obs.ui import STATIC_DIR

    script = (Path(STATIC_DIR) / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, f"app.js uses {sink}"
    index = (Path(STATIC_DIR) / "index.html").read_text()
    assert "<script>" not in index and "javascript:" not in index


@pytest.mark.parametrize(
    "path", ["/", "/api/summary", "/api/traces", "/metrics", "/static/app.js", "/healthz"]
)
def test_dashboard_auth_and_host_checks_cover_every_route(hostile_store: Path, path: str) -> None:
    from starlette.testclient import TestClient

    from agentos_obs.ui import create_app

    token = "tok-0123456789abcdef"
    guarded = create_app(hostile_store, auth_token=token, check_host=False)
    with TestClient(guarded, base_url="http://dashboard.internal") as client:
        assert client.get(path).status_code == 401
        assert (
            client.get(path, headers={"Authorization": "Bearer wrong-token-123"}).status_code == 401
        )
        ok = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert token not in ok.text  # the token is never echoed back
    open_local = create_app(hostile_store)
    with TestClient(open_local, base_url="http://127.0.0.1") as client:
        assert client.get(path).status_code == 200
        rebinding = client.get(path, headers={"Host": "evil.example"})
        assert rebinding.status_code == 421
        assert XSS not in rebinding.text


def test_credentials_in_error_messages_are_redacted() -> None:
    from agentos_obs import Trace, Tracer
    from agentos_obs.testing import FakeChatModel
    from lc_fakes import ModelFailure

    tracer = Tracer("security")
    traces: list[Trace] = []
    tracer.add_exporter(traces.append, sync=True)
    model = FakeChatModel(error=ModelFailure(f"Incorrect API key provided: {API_KEY}"))
    with pytest.raises(ModelFailure):
        model.invoke("hi", config={"callbacks": [AgentOSCallbackHandler(tracer=tracer)]})
    assert API_KEY not in json.dumps([t.to_dict() for t in traces], default=str)
