"""Fuzzing that reaches the sinks: generated traces with hostile values (lone surrogates,
control characters, integers beyond int64, NaN and infinities, deep and cyclic objects,
secrets of every shape) are mixed with good ones and written to a real SQLite store, a JSONL
file and a real OTLP receiver on 127.0.0.1. Every trace arrives in all three (the seal
repairs what it must), and no generated secret is found in any of them."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentos_obs import testing
from agentos_obs.exporters.jsonl import JSONLExporter
from agentos_obs.exporters.otlp import OTLPExporter
from agentos_obs.store import SQLiteStore
from agentos_obs.tracing import SpanKind, Tracer
from otlp_receiver import OTLPReceiver

_SURROGATES = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1
)
_CONTROL = st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=8)
_HOSTILE_SCALARS = st.one_of(
    _SURROGATES,
    _CONTROL.map(lambda s: f"\x1b]0;title\x07{s}\x1b[2J"),
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) - 1),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.binary(max_size=16),
    st.text(max_size=30),
)


def _deep(depth: int) -> Any:
    node: Any = "leaf"
    for _ in range(depth):
        node = {"child": [node]}
    return node


def _cyclic() -> Any:
    box: dict[str, Any] = {"name": "loop"}
    box["self"] = [box]
    return box


_VALUES = st.one_of(
    _HOSTILE_SCALARS,
    st.lists(_HOSTILE_SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), _HOSTILE_SCALARS, max_size=3),
    st.integers(min_value=20, max_value=200).map(_deep),
    st.just(None).map(lambda _: _cyclic()),
)
_SECRET_BODY = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789", min_size=24, max_size=32
)
_SECRET_SHAPES = [
    lambda s: ("api_key", s),  # by key name
    lambda s: ("authorization", f"Bearer {s}"),
    lambda s: ("base_url", f"https://llm.example.com/v1?key={s}&x=1"),
    lambda s: ("endpoint", f"https://user:{s}@proxy.example.com/"),
    lambda s: ("error.message", f"Incorrect API key provided: api_key={s}"),
    lambda s: ("tags", ["prod", f"api_key={s}"]),
    lambda s: ("note", f"use sk-{s}"),
    lambda s: ("params", {"model": "m", "client_secret": s}),
]


@st.composite
def traces(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Spans of one trace: a name and attributes each, some hostile, one with a secret."""
    count = draw(st.integers(min_value=1, max_value=5))
    spans = []
    for _ in range(count):
        name = draw(st.one_of(st.text(min_size=1, max_size=12), _SURROGATES, _CONTROL))
        attributes = draw(st.dictionaries(st.text(min_size=1, max_size=10), _VALUES, max_size=4))
        spans.append({"name": name, "attributes": attributes})
    secret = draw(_SECRET_BODY)
    key, value = _SECRET_SHAPES[draw(st.integers(0, len(_SECRET_SHAPES) - 1))](secret)
    spans[-1]["attributes"][key] = value
    tokens = draw(st.one_of(st.integers(0, 10_000), st.integers(2**63, 2**70)))
    return [{"secret": secret, "tokens": tokens}, *spans]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(traces(), min_size=1, max_size=6))
def test_hostile_traces_mixed_with_good_ones_all_arrive_and_no_secret_leaves(
    tmp_path_factory: Any, batch: list[list[dict[str, Any]]]
) -> None:
    testing.reset_counts()
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with OTLPReceiver() as receiver:
        tracer = Tracer("fuzz")
        store = SQLiteStore(tmp / "fuzz.db")
        jsonl = JSONLExporter(tmp / "fuzz.jsonl")
        otlp = OTLPExporter(receiver.endpoint, timeout_s=5, flush_interval_s=0.05)
        for exporter in (store, jsonl, otlp):
            tracer.add_exporter(exporter)
        secrets: list[str] = []
        expected_spans = 0
        for drawn in batch:
            meta, *spans = drawn
            secrets.append(meta["secret"])
            with tracer.start_span("good-before", SpanKind.CHAIN):
                pass
            with tracer.start_span("root", SpanKind.AGENT):
                for span in spans:
                    with tracer.start_span(span["name"], SpanKind.LLM) as live:
                        for key, value in span["attributes"].items():
                            live.set_attribute(key, value)
                        tracer.record_llm_call("gpt-4o", 10, 5)
                        live.input_tokens = meta["tokens"]
            expected_spans += 2 + len(spans)
        store.close()
        jsonl.close()
        otlp.shutdown()
        assert receiver.wait_for_spans(expected_spans)
        payload = b"".join(r.SerializeToString() for r in receiver.requests)

    traces_written = 2 * len(batch)
    with sqlite3.connect(tmp / "fuzz.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == traces_written
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == expected_spans
        rows = "\n".join(
            str(row) for row in conn.execute("SELECT name, attributes, events FROM spans")
        )
    lines = (tmp / "fuzz.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == traces_written
    for line in lines:
        json.loads(line)  # strict JSON, valid UTF-8
    dropped = testing.dropped_counts()
    assert not any(k.startswith(("store", "jsonl", "otlp")) for k in dropped), dropped
    written = (tmp / "fuzz.jsonl").read_text(encoding="utf-8")
    for secret in secrets:
        assert secret not in rows
        assert secret not in written
        assert secret.encode() not in payload
