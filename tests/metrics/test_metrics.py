"""MetricsRegistry on prometheus_client: registration rules, values, exposition, server."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import agentos_obs._internal.guard as _guard
from agentos_obs.errors import ConfigurationError
from agentos_obs.metrics import (
    GENAI_DURATION_BUCKETS,
    GENAI_TOKEN_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    MetricsCollector,
    MetricsRegistry,
    MetricType,
    SeriesBatch,
    multiprocess_registry,
)
from conftest import require_binary


@pytest.fixture
def registry() -> MetricsRegistry:
    return MetricsRegistry()


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# -- registration ---------------------------------------------------------------------


def test_same_name_returns_the_same_metric(registry: MetricsRegistry) -> None:
    counter = registry.counter("requests_total", "Requests")
    assert registry.counter("requests_total") is counter
    assert registry.counter("requests") is counter  # _total added, as Prometheus does
    assert registry.histogram("h_seconds") is registry.histogram("h_seconds")
    assert registry.gauge("g") is registry.gauge("g")
    assert isinstance(counter, Counter)
    assert counter.type is MetricType.COUNTER
    labelled = registry.counter("calls_total", "Calls", labelnames=("model",))
    assert registry.counter("calls_total") is labelled  # labelnames omitted: as registered
    assert registry.counter("calls_total", labelnames=["model"]) is labelled


def test_same_name_as_another_type_is_a_configuration_error(registry: MetricsRegistry) -> None:
    registry.counter("things_total")
    with pytest.raises(ConfigurationError, match="already registered as a counter"):
        registry.gauge("things_total")
    registry.histogram("latency_seconds")
    with pytest.raises(ConfigurationError, match="clashes with the histogram 'latency_seconds'"):
        registry.counter("latency_seconds")  # would expose latency_seconds_total


def test_same_name_with_other_labels_or_buckets_is_an_error(registry: MetricsRegistry) -> None:
    registry.counter("calls_total", labelnames=("model",))
    with pytest.raises(ConfigurationError, match="labels"):
        registry.counter("calls_total", labelnames=("model", "provider"))
    registry.histogram("size_bytes", buckets=[1, 10])
    assert registry.histogram("size_bytes").bucket_bounds == (1.0, 10.0)
    with pytest.raises(ConfigurationError, match="buckets"):
        registry.histogram("size_bytes", buckets=[1, 100])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "cannot register"),
        ({"name": "ok_total", "labelnames": ("bad-label",)}, "cannot register"),
        ({"name": "ok_total", "labelnames": ("amount",)}, "reserved"),
        ({"name": "ok_total", "labelnames": "model"}, "sequence"),
    ],
)
def test_invalid_names_are_configuration_errors(
    registry: MetricsRegistry, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        registry.counter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("buckets", [[], [2, 1], [1, 1], [float("nan")], ["x"]])
def test_bad_buckets_are_configuration_errors(
    registry: MetricsRegistry, buckets: list[object]
) -> None:
    with pytest.raises(ConfigurationError):
        registry.histogram("h_seconds", buckets=buckets)  # type: ignore[arg-type]


def test_registries_do_not_share_values() -> None:
    first, second = MetricsRegistry(), MetricsCollector()
    first.counter("hits_total").inc(3)
    assert second.counter("hits_total").value == 0
    assert first.prometheus_registry is not second.prometheus_registry


# -- values ---------------------------------------------------------------------------


def test_counter_values_by_label(registry: MetricsRegistry) -> None:
    calls = registry.counter("calls_total", "Calls", labelnames=("model",))
    calls.inc(model="a")
    calls.inc(2.5, model="b")
    calls.labels(model="a").inc()
    assert calls.get(model="a") == 2
    assert calls.get(model="b") == 2.5
    assert calls.get(model="never") == 0
    assert calls.value == 4.5  # every series
    assert calls.labels(model="a") is calls.labels(model="a")  # cached child


def test_counter_rejects_negative_and_wrong_labels(registry: MetricsRegistry) -> None:
    plain = registry.counter("plain_total")
    with pytest.raises(ValueError, match="negative"):
        plain.inc(-1)
    with pytest.raises(ValueError, match="NaN"):
        plain.inc(float("nan"))
    labelled = registry.counter("labelled_total", labelnames=("model",))
    with pytest.raises(ValueError, match="takes labels"):
        labelled.inc(provider="x")
    with pytest.raises(ValueError, match="takes labels"):
        labelled.inc()
    with pytest.raises(ValueError, match="no labels"):
        plain.labels(model="x")
    assert plain.value == 0


def test_gauge_set_inc_dec_and_function(registry: MetricsRegistry) -> None:
    gauge = registry.gauge("queue_depth", "Depth")
    gauge.set(5)
    gauge.inc(2)
    gauge.dec()
    assert gauge.value == 6
    by_worker = registry.gauge("busy", labelnames=("worker",))
    by_worker.inc(worker="a")
    by_worker.set(3, worker="b")
    assert by_worker.get(worker="b") == 3
    assert isinstance(by_worker, Gauge)
    level = [7.0]
    fn_gauge = registry.gauge("level")
    fn_gauge.set_function(lambda: level[0])
    assert fn_gauge.value == 7
    level[0] = 1
    assert "level 1.0" in registry.to_prometheus_text()
    with pytest.raises(ConfigurationError):
        by_worker.set_function(lambda: 1)
    with pytest.raises(ConfigurationError, match="multiprocess_mode"):
        registry.gauge("other", multiprocess_mode="average")


def test_histogram_buckets_are_cumulative_with_inf(registry: MetricsRegistry) -> None:
    histogram = registry.histogram("latency_seconds", "Latency", buckets=[0.1, 1, 10])
    for value in (0.05, 0.1, 0.5, 5, 50):  # 0.1 lands in le=0.1: bounds are inclusive
        histogram.observe(value)
    assert isinstance(histogram, Histogram)
    assert histogram.buckets == {0.1: 2, 1.0: 3, 10.0: 4, math.inf: 5}
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(55.65)
    with pytest.raises(ValueError, match="NaN"):
        histogram.observe(float("nan"))
    assert histogram.count == 5


def test_histogram_per_label_values(registry: MetricsRegistry) -> None:
    histogram = registry.histogram("tokens", buckets=GENAI_TOKEN_BUCKETS, labelnames=("type",))
    histogram.observe(3, type="input")
    histogram.observe(100, type="input")
    histogram.observe(5000, type="output")
    assert histogram.get_count(type="input") == 2
    assert histogram.get_sum(type="output") == 5000
    assert histogram.get_buckets(type="input")[4] == 1
    assert histogram.get_buckets(type="input")[256] == 2
    assert histogram.get_buckets(type="none")[math.inf] == 0
    assert histogram.count == 3
    assert histogram.buckets[math.inf] == 3
    child = histogram.labels(type="output")
    assert (child.count, child.sum, child.buckets[4096], child.buckets[16384]) == (1, 5000, 0, 1)


def test_genai_bucket_constants() -> None:
    # OpenTelemetry GenAI semantic conventions, advised explicit bucket boundaries.
    tokens = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
    tokens += [16777216, 67108864]
    seconds = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
    seconds += [40.96, 81.92]
    assert list(GENAI_TOKEN_BUCKETS) == tokens
    assert list(GENAI_DURATION_BUCKETS) == seconds


def test_threads_lose_no_increment(registry: MetricsRegistry) -> None:
    counter = registry.counter("hits_total", labelnames=("worker",))
    histogram = registry.histogram("sizes", buckets=[1, 2], labelnames=("worker",))
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        for i in range(2000):
            counter.inc(worker=str(i % 3))  # shared children created concurrently
            histogram.observe(1.5, worker=str(index % 2))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value == 16000
    assert histogram.count == 16000
    assert histogram.buckets[2.0] == 16000


def test_collect_shape(registry: MetricsRegistry) -> None:
    registry.counter("calls_total", "Calls", labelnames=("model",)).inc(model="m")
    registry.gauge("open", "Open").set(2)
    registry.histogram("lat_seconds", "Latency", buckets=[1]).observe(0.5)
    registry.gauge_function("fn_value", "From a function", lambda: 4)
    rows = {row["name"]: row for row in registry.collect()}
    assert rows["calls_total"]["value"] == 1
    assert rows["calls_total"]["labels"] == {"model": "m"}
    assert rows["calls_total"]["type"] == "counter"
    assert rows["open"] == {**rows["open"], "type": "gauge", "value": 2.0, "labels": {}}
    assert rows["lat_seconds"]["count"] == 1
    assert rows["lat_seconds"]["sum"] == 0.5
    assert rows["lat_seconds"]["buckets"] == {1.0: 1, math.inf: 1}
    assert rows["lat_seconds"]["description"] == "Latency"
    assert rows["fn_value"]["value"] == 4
    assert all(isinstance(row["timestamp"], float) for row in rows.values())


def test_callback_metrics(registry: MetricsRegistry, lenient: None) -> None:
    registry.counter_function("jobs_total", "Jobs done", lambda: 12)
    registry.gauge_function("broken", "Raises", lambda: 1 / 0)
    text = registry.to_prometheus_text()
    assert "jobs_total 12.0" in text
    assert "\nbroken " not in text  # the failing callback is left out, not the scrape
    assert _guard.failure_counts()["metrics.callback:broken"] >= 1
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.counter("jobs_total")
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.gauge_function("broken", "again", lambda: 2)


# -- exposition -----------------------------------------------------------------------


def test_prometheus_text_help_buckets_sum_count(registry: MetricsRegistry) -> None:
    registry.counter("agent_invocations_total", "Total agent calls").inc()
    histogram = registry.histogram("llm_latency_seconds", "LLM call latency", [0.5, 2])
    histogram.observe(0.25)
    histogram.observe(1)
    text = registry.to_prometheus_text()
    assert "# HELP agent_invocations_total Total agent calls" in text
    assert "# HELP llm_latency_seconds LLM call latency" in text
    assert 'llm_latency_seconds_bucket{le="0.5"} 1.0' in text
    assert 'llm_latency_seconds_bucket{le="2.0"} 2.0' in text
    assert 'llm_latency_seconds_bucket{le="+Inf"} 2.0' in text
    assert "llm_latency_seconds_count 2.0" in text
    assert "llm_latency_seconds_sum 1.25" in text
    assert "AgentOS metric" not in text  # the prototype's fixed HELP text


def test_label_values_are_escaped(registry: MetricsRegistry) -> None:
    nasty = 'say "hi"\\ then\nnewline'
    registry.counter("odd_total", "Odd labels", labelnames=("tool",)).inc(tool=nasty)
    text = registry.to_prometheus_text()
    assert 'odd_total{tool="say \\"hi\\"\\\\ then\\nnewline"} 1.0' in text
    family = families(text)["odd"]
    assert family.samples[0].labels["tool"] == nasty  # type: ignore[attr-defined]
    assert promtool_check(text).returncode == 0


@pytest.mark.prometheus
def test_exposition_passes_promtool(registry: MetricsRegistry) -> None:
    registry.counter("requests_total", "Requests", labelnames=("code",)).inc(code="200")
    registry.gauge("in_flight", "In flight").set(3)
    registry.histogram("request_duration_seconds", "Duration", [0.1, 1]).observe(0.3)
    registry.counter_function("jobs_total", "Jobs", lambda: 1)
    result = promtool_check(registry.to_prometheus_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""  # no lint warning


@pytest.mark.prometheus
def test_promtool_flags_what_we_avoid() -> None:
    # The check is real: a counter without _total and a unit abbreviation are reported.
    bad = "# HELP latency_ms x\n# TYPE latency_ms counter\nlatency_ms 1\n"
    result = promtool_check(bad)
    assert "_total" in result.stdout + result.stderr


def test_exemplar_in_openmetrics_text(registry: MetricsRegistry) -> None:
    histogram = registry.histogram("llm_latency_seconds", "Latency", GENAI_DURATION_BUCKETS)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    histogram.observe(0.3, exemplar={"trace_id": trace_id})
    text = registry.to_openmetrics_text()
    assert f'llm_latency_seconds_bucket{{le="0.32"}} 1.0 # {{trace_id="{trace_id}"}} 0.3' in text
    assert text.rstrip().endswith("# EOF")
    assert "trace_id" not in registry.to_prometheus_text()  # 0.0.4 text has no exemplars
    with pytest.raises(ValueError, match="128"):
        histogram.observe(1, exemplar={"trace_id": "x" * 200})


def test_internal_errors_and_drops_are_exposed(registry: MetricsRegistry, lenient: None) -> None:
    _guard.report("exporter:broken", RuntimeError("boom"))
    _guard.report("exporter:broken", RuntimeError("boom"))
    _guard.count_drop("store.queue", 5)
    text = registry.to_prometheus_text()
    assert 'agentos_obs_internal_errors_total{component="exporter:broken"} 2.0' in text
    assert 'agentos_obs_dropped_total{component="store.queue"} 5.0' in text
    assert promtool_check(text).returncode == 0


def test_internal_names_are_reserved(registry: MetricsRegistry) -> None:
    with pytest.raises(ConfigurationError):
        registry.counter("agentos_obs_internal_errors_total")


# -- batching -------------------------------------------------------------------------


def test_series_batch_is_applied_before_every_read(registry: MetricsRegistry) -> None:
    from prometheus_client import generate_latest

    batch = SeriesBatch(registry)
    counter = registry.counter("batched_total", labelnames=("k",))
    histogram = registry.histogram("batched_seconds", buckets=[1], labelnames=("k",))
    pending_counter = batch.counter(counter.labels(k="a"))
    pending_histogram = batch.histogram(histogram.labels(k="a"))
    with batch.lock:
        pending_counter.add(2)
        pending_histogram.add(0.5, {"trace_id": "ab" * 16})
        pending_histogram.add(3)
    assert counter.get(k="a") == 2
    assert histogram.get_buckets(k="a") == {1.0: 1, math.inf: 2}
    with batch.lock:
        pending_counter.add(1)
    # A scrape of the prometheus_client registry itself (e.g. by the user's own server).
    raw = generate_latest(registry.prometheus_registry).decode()
    assert 'batched_total{k="a"} 3.0' in raw
    with batch.lock:
        pending_histogram.add(0.25, {"trace_id": "cd" * 16})
    assert 'trace_id="' + "cd" * 16 in registry.to_openmetrics_text()
    assert histogram.get_count(k="a") == 3


# -- serving --------------------------------------------------------------------------


def test_http_server_serves_this_registry(registry: MetricsRegistry) -> None:
    registry.counter("scraped_total", "Scraped").inc(7)
    server, port = registry.start_http_server(port=0)
    try:
        assert port > 0
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        assert "scraped_total 7.0" in body
        with pytest.raises(ConfigurationError, match="already running"):
            registry.start_http_server(port=0)
    finally:
        registry.stop()
    registry.stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_http_server_port_in_use_is_a_configuration_error(registry: MetricsRegistry) -> None:
    other = MetricsRegistry()
    _, port = other.start_http_server(port=0)
    try:
        with pytest.raises(ConfigurationError, match="cannot serve"):
            registry.start_http_server(port=port)
    finally:
        other.stop()


# -- multi-process --------------------------------------------------------------------


def test_multiprocess_registry_needs_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        multiprocess_registry()


def test_multiprocess_mode_aggregates_workers(tmp_path: Path) -> None:
    # prometheus_client picks its file-backed values at import: run workers in fresh
    # interpreters with PROMETHEUS_MULTIPROC_DIR set, then aggregate their files.
    worker = textwrap.dedent(
        """
        import os
        from agentos_obs.metrics import MetricsRegistry
        registry = MetricsRegistry()
        registry.counter("jobs_total", "Jobs", labelnames=("kind",)).inc(2, kind="x")
        registry.gauge("busy", "Busy").inc()
        registry.histogram("job_seconds", "Job time", buckets=[1]).observe(0.5)
        print(os.getpid())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", worker],
                env=env,
                check=True,
                timeout=120,
                capture_output=True,
                text=True,
            ).stdout
        )
        for _ in range(2)
    ]
    from prometheus_client import generate_latest
    from prometheus_client.multiprocess import mark_process_dead

    text = generate_latest(multiprocess_registry(str(tmp_path))).decode()
    assert 'jobs_total{kind="x"} 4.0' in text
    assert 'job_seconds_bucket{le="1.0"} 2.0' in text
    assert "job_seconds_count 2.0" in text
    assert "\nbusy 2.0" in text  # livesum: the live workers' values added
    mark_process_dead(pids[0], str(tmp_path))  # what a gunicorn child_exit hook does
    text = generate_latest(multiprocess_registry(str(tmp_path))).decode()
    assert "\nbusy 1.0" in text
    assert 'jobs_total{kind="x"} 4.0' in text  # counters keep the dead worker's counts
