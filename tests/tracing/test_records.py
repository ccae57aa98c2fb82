"""The seal: one immutable record per ended span, sanitised, with its facts derived once."""

from __future__ import annotations

import json
import math

import pytest

from agentos_obs import attributes as attr
from agentos_obs.pricing import Usage
from agentos_obs.tracing import (
    MAX_TOKENS,
    CostStatus,
    SpanKind,
    SpanRecord,
    SpanStatus,
    Tracer,
    TraceRecord,
    UsageRollup,
)


@pytest.fixture
def tracer() -> Tracer:
    return Tracer("records")


def _collect(tracer: Tracer) -> list[TraceRecord]:
    got: list[TraceRecord] = []
    tracer.add_exporter(got.append, sync=True)
    return got


def test_processors_and_exporters_get_the_same_sealed_record(tracer: Tracer) -> None:
    seen: list[SpanRecord] = []

    class Processor:
        def on_end(self, record: SpanRecord) -> None:
            seen.append(record)

    tracer.add_span_processor(Processor())
    traces = _collect(tracer)
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call("gpt-4o", 100, 20)
    assert seen == [span.record]
    assert traces[0].spans == (span.record,)
    assert traces[0].spans[0] is seen[0]


def test_a_record_cannot_be_changed(tracer: Tracer) -> None:
    with tracer.start_span("x") as span:
        span.set_attribute("k", "v")
    record = span.record
    assert record is not None
    with pytest.raises(AttributeError):
        record.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.attributes["k"] = "w"  # type: ignore[index]
    span.attributes["k"] = "changed later"
    assert record.attributes["k"] == "v"


HOSTILE = [
    pytest.param("file-\udc80\udcff.txt", "file-\ufffd\ufffd.txt", id="lone-surrogates"),
    pytest.param(2**64, str(2**64), id="int-beyond-int64"),
    pytest.param(-(2**63) - 1, str(-(2**63) - 1), id="int-below-int64"),
    pytest.param(math.nan, "NaN", id="nan"),
    pytest.param(math.inf, "Infinity", id="inf"),
    pytest.param(["a", 1], '["a",1]', id="mixed-list"),
    pytest.param(["a", "b"], ("a", "b"), id="str-list"),
    pytest.param([1, 2.5], (1.0, 2.5), id="number-list"),
    pytest.param({"x": 1}, '{"x":1}', id="dict"),
    pytest.param(b"raw\xff", '"raw\\\\xff"', id="bytes"),
    pytest.param(True, True, id="bool"),
]


@pytest.mark.parametrize(("value", "expected"), HOSTILE)
def test_attribute_values_are_made_json_safe(
    tracer: Tracer, value: object, expected: object
) -> None:
    with tracer.start_span("x") as span:
        span.set_attribute("value", value)
    assert span.record is not None
    got = span.record.attributes["value"]
    assert got == expected
    json.dumps(span.record.to_dict(), allow_nan=False).encode("utf-8")  # strict JSON, UTF-8


def test_cycles_and_deep_nesting_do_not_break_the_seal(tracer: Tracer) -> None:
    cyclic: dict[str, object] = {"name": "a"}
    cyclic["self"] = cyclic
    cyclic_list: list[object] = [1]
    cyclic_list.append(cyclic_list)
    deep: list[object] = []
    node = deep
    for _ in range(200):
        child: list[object] = []
        node.append(child)
        node = child
    with tracer.start_span("x") as span:
        span.set_attribute("cyclic", cyclic)
        span.set_attribute("cyclic_list", cyclic_list)
        span.set_attribute("deep", deep)
    record = span.record
    assert record is not None
    assert "<circular>" in str(record.attributes["cyclic"])
    assert record.attributes["cyclic_list"] == '[1,"<circular>"]'
    assert "<too deep>" in str(record.attributes["deep"])


def test_names_and_errors_are_valid_utf8_and_scrubbed(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with pytest.raises(RuntimeError), tracer.start_span("tool-\udc80") as span:
        raise RuntimeError("401 for key sk-abcdefghijklmnopqrstuvwxyz123456")
    record = span.record
    assert record is not None
    assert record.name == "tool-\ufffd"
    assert "sk-abc" not in json.dumps(record.to_dict())
    assert traces[0].name == "tool-\ufffd"


@pytest.mark.parametrize(
    ("key", "value", "leaked"),
    [
        pytest.param("api_key", "hunter2-secret", "hunter2", id="secret-key-name"),
        pytest.param("Authorization", "Bearer abc.def.ghi", "abc.def", id="authorization-header"),
        pytest.param(
            "base_url", "https://api.x/v1?key=AIzaSECRETSECRET", "SECRETSECRET", id="url-key"
        ),
        pytest.param("url", "https://bob:pa55word@host/x", "pa55word", id="url-userinfo"),
        pytest.param("tags", ["env=prod", "api_key=abc123secret"], "abc123secret", id="tag-pair"),
        pytest.param("params", {"model": "m", "api_key": "k-123456"}, "k-123456", id="nested-key"),
        pytest.param("msg", "retry with token=tok_live_123456789", "tok_live_1234", id="text-pair"),
        pytest.param("msg", "session_token: tok_live_123456789", "tok_live_1234", id="text-colon"),
    ],
)
def test_credentials_never_reach_the_record(
    tracer: Tracer, key: str, value: object, leaked: str
) -> None:
    with tracer.start_span("x") as span:
        span.set_attribute(key, value)
    assert span.record is not None
    assert leaked not in json.dumps(span.record.to_dict())


def test_counts_that_are_not_real_are_repaired_not_fatal(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("llm", SpanKind.LLM) as span:
        tracer.record_llm_call("gpt-4o", 10, 5)
        span.input_tokens = 2**64  # a provider (or an app) reporting nonsense
    record = span.record
    assert record is not None
    assert record.usage.input_tokens == 0 and record.usage.output_tokens == 5
    assert "input_tokens" in record.attributes["agentos.repaired"]
    assert traces[0].rollup.output_tokens == 5
    assert MAX_TOKENS < 2**63


# -- derived facts ------------------------------------------------------------------------


def test_a_failed_call_is_a_call_with_unknown_cost(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("agent", SpanKind.AGENT):
        with tracer.start_span("ok", SpanKind.LLM):
            tracer.record_llm_call("gpt-4o", 100, 10)
        with pytest.raises(TimeoutError), tracer.start_span("failed", SpanKind.LLM):
            raise TimeoutError("provider timed out")
    rollup = traces[0].rollup
    assert rollup.llm_calls == 2
    assert rollup.no_usage_llm_calls == 1 and not rollup.cost_complete
    failed = next(s for s in traces[0].spans if s.name == "failed")
    assert failed.llm_call and failed.cost_status is CostStatus.NO_USAGE
    assert failed.status is SpanStatus.ERROR and failed.cost_usd is None


def test_wrapper_llm_spans_count_once(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("predict", SpanKind.LLM):
        with tracer.start_span("complete", SpanKind.LLM):
            tracer.record_llm_call("gpt-4o", 10, 5)
    by_name = {s.name: s for s in traces[0].spans}
    assert by_name["complete"].llm_call and not by_name["predict"].llm_call
    assert traces[0].rollup.llm_calls == 1


def test_usage_on_a_parent_and_its_child_counts_the_innermost(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("outer", SpanKind.AGENT):
        tracer.record_llm_call("gpt-4o", 999, 999)
        with tracer.start_span("inner", SpanKind.LLM):
            tracer.record_llm_call("gpt-4o", 10, 5)
    assert traces[0].rollup.llm_calls == 1 and traces[0].rollup.input_tokens == 10


@pytest.mark.parametrize(
    ("model", "estimated", "status"),
    [
        pytest.param("gpt-4o", False, CostStatus.PRICED, id="priced"),
        pytest.param("no-such-model-xyz", False, CostStatus.UNPRICED, id="unpriced"),
        pytest.param("gpt-4o", True, CostStatus.ESTIMATED, id="estimated"),
    ],
)
def test_cost_status(tracer: Tracer, model: str, estimated: bool, status: CostStatus) -> None:
    with tracer.start_span("llm", SpanKind.LLM) as span:
        if estimated:
            span.set_attribute(attr.LLM_USAGE_ESTIMATED, True)
        tracer.record_llm_call(model, 100, 10)
    assert span.record is not None and span.record.cost_status is status
    assert (span.record.cost_usd is None) is (status is CostStatus.UNPRICED)


def test_agent_is_the_agent_name_attribute_else_the_span_name(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("FunctionAgent.run", SpanKind.AGENT) as agent:
        agent.set_attribute(attr.AGENT_NAME, "planner")
        with tracer.start_span("step", SpanKind.CHAIN):
            with tracer.start_span("llm", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 1, 1)
        with tracer.start_span("helper", SpanKind.AGENT):
            with tracer.start_span("llm2", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 1, 1)
    agents = {s.name: s.agent for s in traces[0].spans}
    assert agents == {
        "FunctionAgent.run": "planner",
        "step": "planner",
        "llm": "planner",
        "helper": "helper",
        "llm2": "helper",
    }
    assert set(traces[0].by_agent()) == {"planner", "helper"}


def test_user_and_session_come_from_the_trace_else_the_nearest_ancestor(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_span("root") as root:
        with tracer.start_span("a") as a:
            a.set_attribute(attr.USER_ID, "u-a")
            with tracer.start_span("llm", SpanKind.LLM):
                tracer.record_llm_call("gpt-4o", 1, 1)
        root.set_attribute(attr.SESSION_ID, "s-1")
    by_name = {s.name: s for s in traces[0].spans}
    assert by_name["llm"].user_id == "u-a"
    assert traces[0].session_id == "s-1"


def test_a_deep_trace_seals_without_recursion(tracer: Tracer) -> None:
    # Attribution walks are iterative and memoised (linearity is measured by the benchmarks).
    traces = _collect(tracer)
    spans = [tracer.begin_span("root", SpanKind.AGENT)]
    for i in range(20_000):
        spans.append(tracer.begin_span(f"s{i}", SpanKind.CHAIN, parent=spans[-1]))
    spans[1].set_attribute(attr.USER_ID, "u-deep")
    for span in reversed(spans):
        tracer.end_span(span)
    deepest = traces[0].spans[-1]
    assert deepest.agent == "root" and deepest.user_id == "u-deep"
    assert len(traces[0].spans) == 20_001


# -- traces -------------------------------------------------------------------------------


def test_trace_record_rollup_and_public_constructor_agree(tracer: Tracer) -> None:
    traces = _collect(tracer)
    with tracer.start_trace("run", attributes={attr.USER_ID: "u1"}):
        with tracer.start_span("llm", SpanKind.LLM):
            tracer.record_llm_call("gpt-4o", 100, 20, cache_read_tokens=40)
        with tracer.start_span("llm2", SpanKind.LLM):
            tracer.record_llm_call("claude-sonnet-4", 50, 5)
    live = traces[0]
    rebuilt = TraceRecord(
        trace_id=live.trace_id,
        spans=[
            SpanRecord(
                span_id=s.span_id,
                trace_id=s.trace_id,
                parent_id=s.parent_id,
                name=s.name,
                kind=s.kind,
                status=s.status,
                start_time=s.start_time,
                end_time=s.end_time,
                attributes=s.attributes,
                llm_call=s.llm_call,
                usage=Usage(s.input_tokens, s.output_tokens, s.cache_read_tokens),
                cost_usd=s.cost_usd,
                cost_status=s.cost_status,
                model=s.model,
                sanitized=True,
            )
            for s in live.spans
        ],
        name=live.name,
        user_id=live.user_id,
    )
    assert rebuilt.rollup == live.rollup
    assert rebuilt.total_cost_usd == pytest.approx(live.total_cost_usd) and live.total_cost_usd > 0
    assert live.user_id == "u1" and rebuilt.user_id == "u1"
    assert set(rebuilt.by_model()) == {"gpt-4o", "claude-sonnet-4"}


def test_self_time_subtracts_the_union_of_children() -> None:
    def record(span_id: str, parent: str | None, start: int, end: int) -> SpanRecord:
        return SpanRecord(
            span_id=span_id,
            trace_id="t",
            parent_id=parent,
            name=span_id,
            kind=SpanKind.CHAIN,
            status=SpanStatus.OK,
            start_time=start,
            end_time=end,
        )

    ms = 1_000_000
    trace = TraceRecord(
        trace_id="t",
        spans=[
            record("root", None, 0, 100 * ms),
            record("a", "root", 10 * ms, 50 * ms),
            record("b", "root", 30 * ms, 70 * ms),  # overlaps a: the union is 60 ms
        ],
    )
    assert trace.self_time_ms(trace.spans[0]) == pytest.approx(40.0)
    assert [c.span_id for c in trace.children("root")] == ["a", "b"]


def test_rollups_merge() -> None:
    a, b = UsageRollup(), UsageRollup()
    a.llm_calls, a.cost_usd, b.llm_calls, b.no_usage_llm_calls = 2, 0.5, 1, 1
    a.merge(b)
    assert a.llm_calls == 3 and a.cost_usd == 0.5 and not a.cost_complete


@pytest.mark.parametrize(
    "key",
    [
        "llm.time_to_first_token_ms",
        "gen_ai.usage.input_tokens",
        "llm.token_count.prompt",
        "max_tokens",
        "session.id",
        "primary_key",
    ],
)
def test_counts_and_settings_named_like_secrets_are_kept(tracer: Tracer, key: str) -> None:
    with tracer.start_span("x") as span:
        span.set_attribute(key, 42)
    assert span.record is not None and span.record.attributes[key] == 42
