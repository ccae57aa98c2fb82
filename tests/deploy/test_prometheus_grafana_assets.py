"""The shipped Grafana dashboard and Prometheus alerting rules, against the real thing.

A real Prometheus (Debian's ``prometheus``) loads ``deploy/prometheus/agentos-obs-alerts.yml``
and scrapes the ``/metrics`` of an instrumented run: LangChain chat models (priced, unpriced,
streamed, failing: the small offline model class below) and tools through
``AgentOSCallbackHandler``, an exporter whose backend is down, and more tool names than the
label limit admits. Then every PromQL expression of the dashboard (Grafana's variables
replaced by what Grafana would send) and of the rules must return data, and every alert must
be active: the run overspends the budget, fails more than 5% of its calls, and loses
telemetry. ``promtool check rules`` passes on the file.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import StructuredTool

from agentos_obs.integrations.langchain import AgentOSCallbackHandler
from agentos_obs.metrics import MetricsRegistry, SpanMetricsProcessor
from agentos_obs.tracing import Tracer
from conftest import require_binary

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "agentos-obs-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "agentos-obs-alerts.yml"
ALERTS = {
    "AgentOSLLMSpendOverBudget",
    "AgentOSLLMErrorRatioHigh",
    "AgentOSObsTelemetryDropped",
    "AgentOSObsInternalErrors",
}
# What Grafana puts in place of its variables: the "All" model choice is the variable's
# allValue; the intervals are what a short dashboard range gives with a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$model": ".*"}
WAIT_S = 120.0  # generous: the machine is slow and shared; we poll, never sleep-and-hope


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


# -- static checks ----------------------------------------------------------------------------


def test_promtool_check_rules_passes() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_the_dashboard_is_complete_and_uses_only_known_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "model"}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for title, expr in dashboard_queries():
        assert "$" not in expr, f"{title}: a variable the tests do not know: {expr}"
    titles = " | ".join(p["title"] for p in panels)
    for needed in ("Spend", "Tokens", "latency p50 / p95", "error ratio", "first token"):
        assert needed in titles
    for needed in ("Unpriced", "Telemetry dropped"):
        assert needed in titles
    # Each metric family the issue asks for is on the dashboard.
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "llm_cost_usd_total",
        "llm_tokens_total",
        "llm_calls_total",
        "llm_latency_seconds_bucket",
        "llm_time_to_first_token_seconds_bucket",
        "llm_unpriced_calls_total",
        "agentos_obs_dropped_total",
        "agentos_obs_internal_errors_total",
    ):
        assert metric in exprs


# -- a real Prometheus --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """Prometheus scraping one target every second and evaluating the shipped rules."""

    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            textwrap.dedent(
                f"""
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                rule_files:
                  - {json.dumps(str(RULES))}
                scrape_configs:
                  - job_name: agentos
                    scrape_timeout: 1s
                    static_configs:
                      - targets: ["127.0.0.1:{target_port}"]
                """
            )
        )
        self.log = workdir / "prometheus.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, now or ``at`` a fixed time (then the answer does not depend on
        how long the test took to ask)."""
        params = {"query": promql} | ({} if at is None else {"time": f"{at:.3f}"})
        answer = self.get("/api/v1/query?" + urllib.parse.urlencode(params))
        if answer is None:
            return []
        assert answer["status"] == "success", (promql, answer)
        return list(answer["data"]["result"])

    def wait_for(self, condition: Callable[[], Any], what: Callable[[], str]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus never showed {what()}\n{self.log.read_text()}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self._log_file.close()


@pytest.fixture
def instrumented() -> Iterator[tuple[Tracer, int]]:
    """A tracer feeding a registry served on /metrics, as an app's would be."""
    registry = MetricsRegistry()
    tracer = Tracer("deploy-assets")
    # A small label limit: the run's five tool names overflow it, a real telemetry drop.
    tracer.add_span_processor(SpanMetricsProcessor(registry, tracer=tracer, max_label_values=3))

    def exporter_with_backend_down(trace: Any) -> None:
        raise ConnectionError("backend unreachable")

    tracer.add_exporter(exporter_with_backend_down)
    _server, port = registry.start_http_server(port=0, addr="127.0.0.1")
    yield tracer, port
    registry.stop()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    binary = require_binary("prometheus")
    started: list[Prometheus] = []

    def start(port: int) -> Prometheus:
        server = Prometheus(binary, tmp_path, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class ModelFailure(RuntimeError):
    """What the failing model raises."""


class ProviderChatModel(BaseChatModel):
    """A chat model that answers offline and reports usage as provider integrations do
    (``usage_metadata``; when streaming, on the last chunk), or raises ``error``."""

    model_name: str
    provider: str = "openai"
    input_tokens: int = 120
    output_tokens: int = 30
    error: str | None = None

    @property
    def _llm_type(self) -> str:
        return "deploy-test-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def _message(self, cls: type[AIMessage], content: str) -> Any:
        return cls(
            content=content,
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
            usage_metadata={
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.error:
            raise ModelFailure(self.error)
        return ChatResult(generations=[ChatGeneration(message=self._message(AIMessage, "ok"))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in ("streamed", " words"):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=self._message(AIMessageChunk, ""))


def finite(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The series with a number (histogram_quantile gives NaN for a histogram with no
    observations, such as time to first token of a model never streamed: no data on a panel)."""
    return [r for r in results if math.isfinite(float(r["value"][1]))]


def run_pipelines(tracer: Tracer, rounds: int) -> None:
    """LangChain traffic, one round a second so that Prometheus sees the counters grow."""
    config: Any = {"callbacks": [AgentOSCallbackHandler(tracer=tracer)]}
    # 5M input tokens of gpt-4o (about $12 at catalogue prices): over the $10/hour budget.
    gpt = ProviderChatModel(model_name="gpt-4o", input_tokens=5_000_000, output_tokens=800)
    claude = ProviderChatModel(model_name="claude-3-5-haiku-20241022", provider="anthropic")
    unpriced = ProviderChatModel(model_name="acme-private-7b", provider="acme")
    failing = ProviderChatModel(model_name="gpt-4o", error="provider is down")

    def shout(q: str) -> str:
        return q.upper()

    tools = [
        StructuredTool.from_function(func=shout, name=f"tool_{i}", description="Upper-cases q.")
        for i in range(5)
    ]
    for _ in range(rounds):
        gpt.invoke("Summarise the report", config=config)
        claude.invoke("Classify the ticket", config=config)
        "".join(str(chunk.content) for chunk in claude.stream("Stream a reply", config=config))
        unpriced.invoke("Answer privately", config=config)
        with pytest.raises(ModelFailure):
            failing.invoke("This provider is down", config=config)
        for tool in tools:
            tool.invoke({"q": "x"}, config=config)
        time.sleep(1.0)


def test_every_dashboard_query_and_alert_rule_returns_data_from_a_real_run(
    lenient: None,
    instrumented: tuple[Tracer, int],
    prometheus: Callable[[int], Prometheus],
) -> None:
    tracer, port = instrumented
    server = prometheus(port)
    # Traffic starts once Prometheus has scraped: increase() and rate() need the counters
    # to grow between samples it holds.
    server.wait_for(lambda: server.query('up{job="agentos"} == 1'), lambda: "the target up")
    rounds = 8
    run_pipelines(tracer, rounds)
    # Once Prometheus holds the final counts, every query is asked at that one instant.
    server.wait_for(
        lambda: [
            r for r in server.query("sum(llm_calls_total)") if r["value"][1] == str(5 * rounds)
        ],
        lambda: f"{5 * rounds} LLM calls",
    )
    at = time.time()

    def empty(queries: list[tuple[str, str]]) -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not finite(server.query(expr, at))]

    assert not empty(dashboard_queries()), "no data for:\n" + "\n".join(empty(dashboard_queries()))

    # The values mean what the panels say.
    unpriced = server.query("sum by (model) (increase(llm_unpriced_calls_total[10m])) > 0", at)
    assert {r["metric"]["model"] for r in unpriced} == {"acme-private-7b"}
    ratio = server.query(
        'sum(increase(llm_calls_total{status!="ok"}[10m])) / sum(increase(llm_calls_total[10m]))',
        at,
    )
    assert float(ratio[0]["value"][1]) == pytest.approx(1 / 5, abs=0.05)  # 1 failed call in 5
    ttft = server.query(
        "histogram_quantile(0.95, sum by (le, model) "
        "(rate(llm_time_to_first_token_seconds_bucket[1m])))",
        at,
    )
    assert {r["metric"]["model"] for r in finite(ttft)} == {"claude-3-5-haiku-20241022"}
    dropped = server.query("sum by (component) (agentos_obs_dropped_total)", at)
    assert {r["metric"]["component"] for r in dropped} == {
        "span_metrics.labels",
        "exporter:instrumented.<locals>.exporter_with_backend_down",  # its traces were lost
    }
    errors = server.query("sum by (component) (agentos_obs_internal_errors_total)", at)
    (error,) = errors
    assert error["metric"]["component"].endswith("exporter_with_backend_down")

    # The rules: loaded, healthy, each expression returning data, each alert active.
    def rules() -> list[dict[str, Any]]:
        answer = server.get("/api/v1/rules") or {"data": {"groups": []}}
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def inactive() -> list[str]:
        return [
            f"{r['name']} ({r['state']}, {r.get('lastError', '')})"
            for r in rules()
            if r["health"] != "ok" or r["state"] not in ("pending", "firing")
        ]

    server.wait_for(lambda: {r["name"] for r in rules()} == ALERTS, lambda: f"rules {ALERTS}")
    server.wait_for(lambda: not inactive(), lambda: "active alerts; not: " + ", ".join(inactive()))
    for rule in rules():
        assert finite(server.query(rule["query"])), rule["name"]
    spend = server.query("sum(increase(llm_cost_usd_total[1h]))")
    assert float(spend[0]["value"][1]) > 10
