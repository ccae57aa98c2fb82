"""The rollups answer what a scan of the stored traces answers, over any window: whole
buckets from the rollup rows, the ends folded from the rows. Checked against a brute-force
computation from the records themselves, for random windows (on and off bucket edges)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_obs.pricing import Usage
from agentos_obs.store import SQLiteStore
from agentos_obs.store import _sketch as sketch
from agentos_obs.tracing import CostStatus, SpanKind, SpanRecord, SpanStatus, TraceRecord

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_123 * NS + 456_789  # not on any bucket edge
SPAN = 3 * 86_400 * NS  # traces start over three days
MODELS = ["gpt-4o", "claude", None, "unpriced-model"]
KINDS = [SpanKind.CHAIN, SpanKind.TOOL, SpanKind.RETRIEVAL, SpanKind.LLM, SpanKind.AGENT]


def make_traces(count: int, seed: int) -> list[TraceRecord]:
    rng = random.Random(seed)
    traces = []
    for n in range(count):
        start = T0 + rng.randrange(SPAN)
        trace_id = f"{rng.getrandbits(128):032x}"
        user = rng.choice(["ann", "bob", "cy", None])
        session = rng.choice([f"s{i}" for i in range(12)] + [None])
        agent = rng.choice(["planner", "writer"])
        records: list[SpanRecord] = []
        root_id = f"{n:016x}"
        root_end = start + rng.randrange(50, 5000) * MS
        failed_trace = rng.random() < 0.15
        records.append(
            SpanRecord(
                span_id=root_id, trace_id=trace_id, parent_id=None, name="root",
                kind=SpanKind.AGENT, status=SpanStatus.ERROR if failed_trace else SpanStatus.OK,
                start_time=start, end_time=root_end, user_id=user, session_id=session,
                agent=agent, sanitized=True,
            )
        )  # fmt: skip
        parents = [(root_id, start, root_end)]
        for i in range(rng.randrange(1, 8)):
            parent_id, p_start, p_end = rng.choice(parents)
            begin = rng.randrange(p_start, max(p_start + 1, p_end))
            end = min(p_end, begin + rng.randrange(1, 2000) * MS)
            kind = rng.choice(KINDS)
            span_id = f"{n:08x}{i + 1:08x}"
            fields: dict[str, Any] = {}
            if kind is SpanKind.LLM:
                model = rng.choice(MODELS)
                failed = rng.random() < 0.2
                fields["llm_call"] = True
                fields["model"] = model
                if failed:
                    fields["cost_status"] = CostStatus.NO_USAGE
                else:
                    tokens = Usage(rng.randrange(1, 5000), rng.randrange(0, 900))
                    fields["usage"] = tokens
                    if model == "unpriced-model":
                        fields["cost_status"] = CostStatus.UNPRICED
                    else:
                        fields["cost_usd"] = tokens.input_tokens / 1e6 + tokens.output_tokens / 5e5
                        fields["cost_status"] = rng.choice(
                            [CostStatus.PRICED, CostStatus.PRICED, CostStatus.ESTIMATED]
                        )
                status = SpanStatus.ERROR if failed else SpanStatus.OK
            else:
                status = SpanStatus.TIMEOUT if rng.random() < 0.05 else SpanStatus.OK
            records.append(
                SpanRecord(
                    span_id=span_id, trace_id=trace_id, parent_id=parent_id, name=kind.value,
                    kind=kind, status=status, start_time=begin, end_time=end, user_id=user,
                    session_id=session, agent=agent, sanitized=True, **fields,
                )
            )  # fmt: skip
            parents.append((span_id, begin, end))
        traces.append(
            TraceRecord(
                trace_id=trace_id, spans=records, name=f"t{n}", root_span_id=root_id,
                user_id=user, session_id=session, sanitized=True,
            )
        )  # fmt: skip
    return traces


@pytest.fixture(scope="module")
def stored(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SQLiteStore, list[TraceRecord]]]:
    traces = make_traces(400, seed=14)
    path = tmp_path_factory.mktemp("rollups") / "r.db"
    store = SQLiteStore(path, batch_size=97)  # many batches: rows merge across them
    for i, trace in enumerate(traces):
        if i % 3 == 0:  # a third written live, span by span, then settled
            for record in sorted(trace.spans, key=lambda r: r.end_time):
                store.on_end(record)
        store.export(trace)
    assert store.flush()
    yield store, traces
    store.close()


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q)) - 1]


def close(got: float | None, want: float | None) -> bool:
    if want is None:
        return got is None
    return got is not None and abs(got - want) <= 0.0101 * abs(want) + 1e-9


def in_window(trace: TraceRecord, lo: int | None, hi: int | None) -> bool:
    return (lo is None or trace.start_time >= lo) and (hi is None or trace.start_time < hi)


def calls(trace: TraceRecord) -> Iterator[SpanRecord]:
    return (s for s in trace.spans if s.llm_call)


windows = st.one_of(
    st.tuples(st.none(), st.none()),
    st.tuples(
        st.one_of(st.none(), st.integers(T0 - NS, T0 + SPAN)),
        st.one_of(st.none(), st.integers(T0, T0 + SPAN + NS)),
    ),
    # On bucket edges: whole hours and days only.
    st.tuples(
        st.integers(0, 80).map(lambda h: (T0 // (3600 * NS) + h) * 3600 * NS),
        st.integers(1, 4).map(lambda d: (T0 // (86400 * NS) + d) * 86400 * NS),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(window=windows)
def test_summary_equals_a_scan(
    stored: tuple[SQLiteStore, list[TraceRecord]], window: tuple[int | None, int | None]
) -> None:
    store, traces = stored
    lo, hi = window
    chosen = [t for t in traces if in_window(t, lo, hi)]
    got = store.summary(since=lo, until=hi)
    assert got["trace_count"] == got["finished_traces"] == len(chosen)
    assert got["span_count"] == sum(len(t.spans) for t in chosen)
    assert got["error_count"] == sum(t.status.value in ("error", "timeout") for t in chosen)
    assert got["llm_calls"] == sum(t.rollup.llm_calls for t in chosen)
    assert got["no_usage_llm_calls"] == sum(t.rollup.no_usage_llm_calls for t in chosen)
    assert got["unpriced_llm_calls"] == sum(t.rollup.unpriced_llm_calls for t in chosen)
    assert got["estimated_llm_calls"] == sum(t.rollup.estimated_llm_calls for t in chosen)
    assert got["input_tokens"] == sum(t.rollup.input_tokens for t in chosen)
    assert got["total_cost_usd"] == pytest.approx(sum(t.rollup.cost_usd for t in chosen))
    assert got["users"] == len({t.user_id for t in chosen if t.user_id})
    assert got["sessions"] == len({t.session_id for t in chosen if t.session_id})
    durations = [t.duration_ms for t in chosen]
    for q in (0.5, 0.95, 0.99):
        assert close(got[f"latency_p{round(q * 100)}_ms"], nearest_rank(durations, q))
    if durations:
        assert got["latency_max_ms"] == pytest.approx(max(durations))
        assert got["latency_avg_ms"] == pytest.approx(sum(durations) / len(durations))
    series = store.timeseries(buckets=7, since=lo, until=hi)
    if chosen:
        # Minute resolution: a trace in the window's first or last partial minute may be
        # counted with it.
        assert abs(sum(p["traces"] for p in series["points"]) - len(chosen)) <= 2


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(window=windows)
def test_breakdowns_equal_a_scan(
    stored: tuple[SQLiteStore, list[TraceRecord]], window: tuple[int | None, int | None]
) -> None:
    store, traces = stored
    lo, hi = window
    chosen = [t for t in traces if in_window(t, lo, hi)]
    by_model: dict[str | None, list[SpanRecord]] = defaultdict(list)
    model_traces: dict[str | None, set[str]] = defaultdict(set)
    for trace in chosen:
        for record in calls(trace):
            by_model[record.model].append(record)
            model_traces[record.model].add(trace.trace_id)
    rows = {r["key"]: r for r in store.aggregate("model", since=lo, until=hi)}
    assert set(rows) == set(by_model)
    for model, records in by_model.items():
        row = rows[model]
        assert row["llm_calls"] == row["runs"] == len(records)
        assert row["traces"] == len(model_traces[model])
        assert row["errors"] == sum(r.failed for r in records)
        assert row["input_tokens"] == sum(r.input_tokens for r in records if r.counts_usage)
        assert row["cost_usd"] == pytest.approx(sum(r.cost_usd or 0.0 for r in records))
        latencies = [r.latency_ms or 0.0 for r in records]
        assert close(row["latency_p95_ms"], nearest_rank(latencies, 0.95))
    users: dict[str | None, list[TraceRecord]] = defaultdict(list)
    for trace in chosen:
        users[trace.user_id].append(trace)
    user_rows = {r["key"]: r for r in store.aggregate("user", since=lo, until=hi)}
    assert set(user_rows) == set(users)
    for user, group in users.items():
        row = user_rows[user]
        assert row["runs"] == row["traces"] == len(group)
        assert row["llm_calls"] == sum(t.rollup.llm_calls for t in group)
        assert row["cost_usd"] == pytest.approx(sum(t.rollup.cost_usd for t in group))
        assert close(row["latency_p50_ms"], nearest_rank([t.duration_ms for t in group], 0.5))
    agents: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for trace in chosen:
        for record in trace.spans:
            if record.kind is SpanKind.AGENT:
                agents[record.agent].append(record)
    agent_rows = {r["key"]: r for r in store.aggregate("agent", since=lo, until=hi)}
    for agent, records in agents.items():
        assert agent_rows[agent]["runs"] == len(records)
        assert close(
            agent_rows[agent]["latency_p50_ms"], nearest_rank([r.duration_ms for r in records], 0.5)
        )
    days = store.aggregate("day", since=lo, until=hi)
    assert sum(d["runs"] for d in days) == len(chosen)
    assert sum(d["cost_usd"] for d in days) == pytest.approx(sum(t.rollup.cost_usd for t in chosen))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(window=windows)
def test_stages_equal_a_scan(
    stored: tuple[SQLiteStore, list[TraceRecord]], window: tuple[int | None, int | None]
) -> None:
    store, traces = stored
    lo, hi = window
    chosen = [t for t in traces if in_window(t, lo, hi)]
    inclusive: dict[str, list[float]] = defaultdict(list)
    own: dict[str, list[float]] = defaultdict(list)
    for trace in chosen:
        for record in trace.spans:
            inclusive[record.kind.value].append(record.duration_ms)
            own[record.kind.value].append(trace.self_time_ms(record))
    rows = {r["stage"]: r for r in store.stages(since=lo, until=hi)}
    assert set(rows) == set(inclusive)
    for kind, values in inclusive.items():
        row = rows[kind]
        assert row["count"] == len(values)
        assert row["inclusive"]["total"] == pytest.approx(sum(values))
        assert row["self"]["total"] == pytest.approx(sum(own[kind]))
        assert close(row["inclusive"]["p50"], nearest_rank(values, 0.5))
        assert close(row["self"]["p95"], nearest_rank(own[kind], 0.95))
        assert row["self"]["p50"] <= row["inclusive"]["p95"] + 1e-6


def test_filter_menus_and_the_change_marker(stored: tuple[SQLiteStore, list[TraceRecord]]) -> None:
    store, traces = stored
    options = store.filter_options()
    assert options["models"] == sorted({r.model for t in traces for r in calls(t) if r.model})
    assert options["users"] == sorted({t.user_id for t in traces if t.user_id})
    assert options["agents"] == ["planner", "writer"]
    marker = store.change_marker()
    assert marker["trace_count"] == len(traces) and marker["running_traces"] == 0


def test_sketch_bins_are_ddsketch_bins_within_one_percent() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(5, 2) for _ in range(5000)] + [0.0] * 10
    bins = sketch.bins_of(values)
    blob = sketch.encode(bins)
    assert blob is not None and sketch.decode(blob) == bins
    for value in values[:200]:
        if value > 0:
            assert sketch.key_of(value) == sketch.MAPPING.key(value)
    merged = sketch.merge_many(
        ["a", "a"],
        [
            sketch.encode(sketch.bins_of(values[:2500])),
            sketch.encode(sketch.bins_of(values[2500:])),
        ],
    )
    keys, counts = merged["a"]
    for q in (0.01, 0.5, 0.9, 0.99):
        got = sketch.quantile(keys, counts, q)
        want = nearest_rank(values, q)
        assert want is not None and close(got, want)
    # Subtraction is exact: what retention relies on.
    back = sketch.merge_blobs(
        blob, sketch.encode({k: -c for k, c in sketch.bins_of(values[:100]).items()})
    )
    assert sketch.decode(back) == sketch.bins_of(values[100:])


def test_distinct_sessions_by_hyperloglog() -> None:
    from agentos_obs.store import _hll as hll

    small = hll.registers_of(f"s{i}" for i in range(12))
    assert hll.estimate(hll.decode(hll.encode(small))) == 12
    halves = [hll.encode(hll.registers_of(f"s{i}" for i in range(k, 20_000, 2))) for k in (0, 1)]
    merged = hll.union([*halves, halves[0]])  # merging is idempotent
    assert abs(hll.estimate(merged) - 20_000) <= 20_000 * 0.05
    dense = hll.decode(hll.merge(halves[0], halves[1]))
    assert (dense == merged).all()
    assert hll.estimate(hll.union([])) == 0
