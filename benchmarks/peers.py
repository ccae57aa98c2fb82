"""Benchmark configurations: agentos-obs in its modes, and the peer tools a user would pick.

A configuration is set up once per worker process (``start``) and then, for every timed
block, switched on (``enter``) and off (``exit``): tools that patch LangChain or LlamaIndex
globally (OpenInference, OpenLLMetry, agentos-obs global mode) are instrumented and
uninstrumented around each block, so the uninstrumented baseline interleaved with them in
the same process really runs uninstrumented. Callback-handler tools pass their handler per
call (``callbacks``) and have nothing to switch.

Every configuration is offline: backends are an in-memory OpenTelemetry exporter or the
local sink on 127.0.0.1 (``sink.py``) started by ``run.py``; telemetry of the tools
themselves is switched off by environment variables set in ``OFFLINE_ENV``.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "AGENTOS_CONFIGS",
    "CONFIGS",
    "OFFLINE_ENV",
    "PEER_CONFIGS",
    "REFERENCE_CONFIGS",
    "Config",
    "package_version",
    "skipped_peers",
]

# Set in every worker before any tool is imported: no tool phones home or leaves the machine.
OFFLINE_ENV = {
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "LANGFUSE_PUBLIC_KEY": "pk-lf-bench",
    "LANGFUSE_SECRET_KEY": "sk-lf-bench",
    "LANGFUSE_TRACING_ENABLED": "true",
    "LANGFUSE_MEDIA_UPLOAD_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "TRACELOOP_TELEMETRY": "false",
    "OTEL_SDK_DISABLED": "false",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

Traces = dict[Any, list[tuple[Any, Any]]]


def sink_get(sink_url: str | None, path: str) -> Any:
    """GET a path of the local sink (its decoded statistics) as JSON."""
    import json

    assert sink_url is not None
    with urllib.request.urlopen(f"{sink_url}{path}", timeout=10) as response:
        return json.loads(response.read())


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class Config:
    """Base configuration: the uninstrumented baseline (nothing on, nothing recorded)."""

    key = "baseline"
    label = "uninstrumented baseline"
    frameworks: frozenset[str] = frozenset({"langchain", "llama_index"})
    packages: tuple[str, ...] = ()
    # The uninstrumented baseline produces no trees; tools that do are checked.
    records_trees = False

    def __init__(self, sink_url: str | None = None) -> None:
        self.sink_url = sink_url

    def start(self) -> None:
        """Build the tool's objects (once per process, outside the timed blocks)."""

    def callbacks(self, framework: str) -> list[Any] | None:
        """LangChain callbacks to pass per call (None: none, or global instrumentation)."""
        return None

    def enter(self, framework: str) -> None:
        """Switch global instrumentation on before a timed block."""

    def exit(self, framework: str) -> None:
        """Switch it off after the block (the baseline must run uninstrumented)."""

    def flush(self) -> None:
        """Push buffered data to its backend (before a correctness check)."""

    def clear(self) -> None:
        """Forget what was recorded (long memory runs: a real backend would take it away)."""

    def trees(self) -> Traces | None:
        """``{trace id: [(span id, parent id)]}`` of what was recorded, for the check."""
        return None

    def usage_check(self, invocations: int, input_tokens: int) -> str | None:
        """For tools that record no trees: whether usage totals are right."""
        return None

    def backend_traces(self) -> int | None:
        """Traces the configuration's backend holds since ``start_collecting`` (None: no
        separate backend to read back)."""
        return None

    def versions(self) -> dict[str, str]:
        return {p: package_version(p) for p in self.packages}


# -- agentos-obs --------------------------------------------------------------------------


class AgentOSHandler(Config):
    """The full default stack (metrics, dashboard, cost analytics) with one explicit
    ``AgentOSCallbackHandler`` passed per call. LlamaIndex has no per-call callbacks, so
    there the handler mode is its dispatcher instrumentation, switched per block."""

    key = "agentos-handler"
    label = "agentos-obs handler (full stack)"
    packages: tuple[str, ...] = ("agentos-obs",)
    records_trees = True

    def start(self) -> None:
        from agentos_obs import create_observability_stack

        self.stack = create_observability_stack("bench")
        self.tracer = self.stack.tracer
        self._collected: Traces = {}
        self._collecting = False
        self.tracer.add_exporter(self._collect, sync=True)
        self.add_exporters()
        from agentos_obs.integrations.langchain import AgentOSCallbackHandler

        self.handler = AgentOSCallbackHandler(tracer=self.tracer)

    def add_exporters(self) -> None:
        """Extra exporters of the derived configurations (store, OTLP)."""

    def _collect(self, trace: Any) -> None:
        # Cheap when off: timed blocks run with collecting off (one attribute test).
        if self._collecting:
            self._collected[trace.trace_id] = [(s.span_id, s.parent_id) for s in trace.spans]

    def start_collecting(self) -> None:
        self._collected = {}
        self._collecting = True

    def callbacks(self, framework: str) -> list[Any] | None:
        return [self.handler] if framework == "langchain" else None

    def enter(self, framework: str) -> None:
        if framework == "llama_index":
            import agentos_obs.integrations.llama_index as llama_index

            llama_index.instrument(tracer=self.tracer)

    def exit(self, framework: str) -> None:
        if framework == "llama_index":
            import agentos_obs.integrations.llama_index as llama_index

            llama_index.uninstrument()

    def flush(self) -> None:
        self.tracer.force_flush()

    def trees(self) -> Traces | None:
        return self._collected


class AgentOSBareTracer(AgentOSHandler):
    """The handler on a plain ``Tracer`` (no metrics, dashboard or cost processors): what the
    LangChain integration itself costs, apart from the default stack's processing."""

    key = "agentos-bare"
    label = "agentos-obs handler, plain Tracer (no metrics/dashboard)"

    def start(self) -> None:
        from agentos_obs import Tracer

        self.tracer = Tracer("bench")
        self._collected = {}
        self._collecting = False
        self.tracer.add_exporter(self._collect, sync=True)
        from agentos_obs.integrations.langchain import AgentOSCallbackHandler

        self.handler = AgentOSCallbackHandler(tracer=self.tracer)


class AgentOSGlobal(AgentOSHandler):
    """``instrument(tracer)``: every LangChain / LlamaIndex run traced, no callbacks passed."""

    key = "agentos-global"
    label = "agentos-obs global instrument() (full stack)"

    def callbacks(self, framework: str) -> list[Any] | None:
        return None

    def enter(self, framework: str) -> None:
        if framework == "langchain":
            import agentos_obs.integrations.langchain as langchain

            langchain.instrument(tracer=self.tracer)
        else:
            super().enter(framework)

    def exit(self, framework: str) -> None:
        if framework == "langchain":
            import agentos_obs.integrations.langchain as langchain

            langchain.uninstrument()
        else:
            super().exit(framework)


class AgentOSStore(AgentOSHandler):
    """Handler + the embedded SQLite store (a file in a temporary directory)."""

    key = "agentos-sqlite"
    label = "agentos-obs handler + SQLite store"

    def add_exporters(self) -> None:
        from agentos_obs.store import SQLiteStore

        self._dir = tempfile.mkdtemp(prefix="agentos-bench-")
        self.store = SQLiteStore(Path(self._dir) / "traces.db")
        self.tracer.add_exporter(self.store)

    def start_collecting(self) -> None:
        super().start_collecting()
        self.store.flush()
        self._stored_before = self.store.count_traces()

    def flush(self) -> None:
        self.tracer.force_flush()  # the store and the dashboard's queue

    def backend_traces(self) -> int | None:
        return int(self.store.count_traces()) - self._stored_before


class AgentOSOTLP(AgentOSHandler):
    """Handler + the OTLP exporter sending to the local sink."""

    key = "agentos-otlp"
    label = "agentos-obs handler + OTLP export (local sink)"
    packages = ("agentos-obs", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")

    def add_exporters(self) -> None:
        from agentos_obs.exporters.otlp import OTLPExporter

        assert self.sink_url is not None
        self.otlp = OTLPExporter(endpoint=f"{self.sink_url}/v1/traces")
        self.tracer.add_exporter(self.otlp)

    def start_collecting(self) -> None:
        super().start_collecting()
        self.otlp.flush()
        sink_get(self.sink_url, "/stats?reset=1")

    def flush(self) -> None:
        self.tracer.force_flush()

    def backend_traces(self) -> int | None:
        return int(sink_get(self.sink_url, "/stats")["traces"])


# -- peers --------------------------------------------------------------------------------


class _InMemoryOTel(Config):
    """Peers built on OpenTelemetry: a TracerProvider with an in-memory exporter behind a
    SimpleSpanProcessor (the cheapest export path an OTel tool can have)."""

    records_trees = True

    def start(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def clear(self) -> None:
        self.exporter.clear()

    def start_collecting(self) -> None:
        self.exporter.clear()

    def trees(self) -> Traces | None:
        out: Traces = defaultdict(list)
        for span in self.exporter.get_finished_spans():
            parent = span.parent.span_id if span.parent is not None else None
            out[span.context.trace_id].append((span.context.span_id, parent))
        return dict(out)


class OpenInference(_InMemoryOTel):
    key = "openinference"
    label = "OpenInference instrumentors (in-memory OTel exporter)"
    packages = (
        "openinference-instrumentation-langchain",
        "openinference-instrumentation-llama-index",
        "opentelemetry-sdk",
    )

    def start(self) -> None:
        super().start()
        from openinference.instrumentation.langchain import LangChainInstrumentor
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

        self.instrumentors = {
            "langchain": LangChainInstrumentor(),
            "llama_index": LlamaIndexInstrumentor(),
        }

    def enter(self, framework: str) -> None:
        self.instrumentors[framework].instrument(tracer_provider=self.provider)

    def exit(self, framework: str) -> None:
        self.instrumentors[framework].uninstrument()


class OpenLLMetry(_InMemoryOTel):
    key = "openllmetry"
    label = "OpenLLMetry LangChain instrumentor (in-memory OTel exporter)"
    frameworks = frozenset({"langchain"})
    packages = ("opentelemetry-instrumentation-langchain", "opentelemetry-sdk")

    def start(self) -> None:
        super().start()
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        self.instrumentor = LangchainInstrumentor()

    def enter(self, framework: str) -> None:
        self.instrumentor.instrument(tracer_provider=self.provider)

    def exit(self, framework: str) -> None:
        self.instrumentor.uninstrument()
        # opentelemetry-instrumentation-langchain 0.62.4: uninstrument() leaves
        # BaseCallbackManager.__init__ wrapped (its handler stays in every run). Undo the
        # wrapt wrapper ourselves so the interleaved baseline really runs uninstrumented.
        from langchain_core.callbacks import base

        wrapped = base.BaseCallbackManager.__dict__["__init__"]
        original = getattr(wrapped, "__wrapped__", None)
        if original is not None:
            base.BaseCallbackManager.__init__ = original  # type: ignore[method-assign]


class _SinkBacked(Config):
    """Peers exporting over HTTP to the local sink; trees are read back from the sink."""

    records_trees = True

    def start_collecting(self) -> None:
        self.flush()
        sink_get(self.sink_url, "/stats?reset=1")

    def clear(self) -> None:
        sink_get(self.sink_url, "/stats?reset=1")

    def sink_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = sink_get(self.sink_url, "/stats")
        return result


class Langfuse(_SinkBacked):
    """Langfuse's LangChain ``CallbackHandler`` (OTel-based since v3), its client pointed at
    the local sink (OTLP/HTTP protobuf to ``/api/public/otel/v1/traces``)."""

    key = "langfuse"
    label = "Langfuse LangChain CallbackHandler (to local sink)"
    frameworks = frozenset({"langchain"})
    packages = ("langfuse",)

    def start(self) -> None:
        from langfuse import Langfuse as Client
        from langfuse.langchain import CallbackHandler

        self.client = Client(
            public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=self.sink_url
        )
        self.handler = CallbackHandler()

    def callbacks(self, framework: str) -> list[Any] | None:
        return [self.handler]

    def flush(self) -> None:
        self.client.flush()


class MLflow(_SinkBacked):
    """MLflow tracing's LangChain tracer (``mlflow-tracing``), exporting OTLP to the sink:
    MLflow's documented OTLP mode, so no tracking server is needed."""

    key = "mlflow"
    label = "MLflow tracing LangChain tracer (OTLP to local sink)"
    frameworks = frozenset({"langchain"})
    packages = ("mlflow-tracing",)

    def start(self) -> None:
        assert self.sink_url is not None
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{self.sink_url}/v1/traces"
        os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
        # An explicit tracking URI: otherwise MLflow probes for a local ./mlruns store.
        os.environ.setdefault("MLFLOW_TRACKING_URI", self.sink_url)
        from mlflow.langchain.langchain_tracer import MlflowLangchainTracer

        self.handler = MlflowLangchainTracer()

    def callbacks(self, framework: str) -> list[Any] | None:
        return [self.handler]

    def flush(self) -> None:
        from mlflow.tracing.provider import provider
        from opentelemetry import trace

        tracer_provider = provider.get() if hasattr(provider, "get") else None
        flush: Callable[..., Any] | None = getattr(tracer_provider, "force_flush", None)
        if flush is None:
            flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if flush is not None:
            flush()


class LangChainUsage(Config):
    """LangChain's own ``UsageMetadataCallbackHandler``: token totals per model, no spans."""

    key = "lc-usage"
    label = "LangChain UsageMetadataCallbackHandler"
    frameworks = frozenset({"langchain"})
    packages = ("langchain-core",)

    def start(self) -> None:
        from langchain_core.callbacks import UsageMetadataCallbackHandler

        self.handler = UsageMetadataCallbackHandler()

    def callbacks(self, framework: str) -> list[Any] | None:
        return [self.handler]

    def start_collecting(self) -> None:
        self.handler.usage_metadata = {}

    def clear(self) -> None:
        self.handler.usage_metadata = {}

    def usage_check(self, invocations: int, input_tokens: int) -> str | None:
        got = sum(u.get("input_tokens", 0) for u in self.handler.usage_metadata.values())
        want = invocations * input_tokens
        return "ok" if got == want else f"input tokens {got} != expected {want}"


class NoopHandler(Config):
    """A ``BaseCallbackHandler`` that does nothing: the floor LangChain itself charges for
    dispatching callbacks to any handler (a reference, not a peer)."""

    key = "noop-handler"
    label = "reference: LangChain no-op callback handler (dispatch floor)"
    frameworks = frozenset({"langchain"})
    packages = ("langchain-core",)

    def start(self) -> None:
        from langchain_core.callbacks import BaseCallbackHandler

        self.handler = BaseCallbackHandler()

    def callbacks(self, framework: str) -> list[Any] | None:
        return [self.handler]


CONFIGS: dict[str, type[Config]] = {
    c.key: c
    for c in (
        Config,
        AgentOSHandler,
        AgentOSBareTracer,
        AgentOSGlobal,
        AgentOSStore,
        AgentOSOTLP,
        OpenInference,
        OpenLLMetry,
        Langfuse,
        MLflow,
        LangChainUsage,
        NoopHandler,
    )
}
AGENTOS_CONFIGS = ("agentos-handler", "agentos-global", "agentos-sqlite", "agentos-otlp")
PEER_CONFIGS = ("openinference", "openllmetry", "langfuse", "mlflow", "lc-usage")
REFERENCE_CONFIGS = ("agentos-bare", "noop-handler")


def skipped_peers() -> dict[str, str]:
    """Peers named in the issue that are not measured, and why."""
    return {
        "Traceloop SDK (traceloop-sdk)": (
            "measured as its LangChain instrumentor (opentelemetry-instrumentation-langchain, "
            "'openllmetry' row); the SDK itself adds a hosted-backend client and telemetry"
        ),
        "MLflow autolog / full mlflow": (
            "full mlflow pulls a tracking server stack (sqlalchemy, alembic, flask...); the "
            "lightweight mlflow-tracing package's LangChain tracer is measured instead"
        ),
    }
