"""Content capture shared by the integrations: real LangChain messages and documents, made
text by the one serialiser with the one redactor, then truncated."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import SecretStr

import agentos_obs._internal.redact as one_redactor
import agentos_obs.integrations._content as content
from agentos_obs.integrations._content import to_text, truncate

KEY = "sk-proj-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt" * 2


def test_the_redactor_is_the_one_every_sink_uses() -> None:
    # Re-exported for the integrations, not copies with their own rules.
    assert content.redact is one_redactor.redact
    assert content.is_secret_key is one_redactor.is_secret_key
    assert content.REDACTED == one_redactor.REDACTED


def test_messages_and_documents_keep_their_content_and_role() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("hi"),
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": "otlp"}, "id": "call_1"}]),
    ]
    decoded = json.loads(to_text(messages, 10_000))
    assert decoded[0] == {"content": "Be brief.", "role": "system"}
    assert decoded[1] == {"content": "hi", "role": "human"}
    assert decoded[2]["role"] == "ai" and decoded[2]["tool_calls"][0]["name"] == "search"
    documents = [Document(page_content="OTLP is a protocol", metadata={"src": "a"})]
    assert json.loads(to_text(documents, 10_000)) == [
        {"page_content": "OTLP is a protocol", "metadata": {"src": "a"}}
    ]


def test_secrets_never_reach_captured_content() -> None:
    class Client:
        def __repr__(self) -> str:
            return f"Client(api_key={KEY!r})"

    value: dict[str, Any] = {
        "prompt": f"my key is {KEY}",
        "api_key": "plain-looking-value",
        "headers": {"Authorization": "Bearer abcdefghijklmnop"},
        "secret": SecretStr("hidden-value"),
        "client": Client(),  # unknown objects show their type, never their repr
        "url": "https://host/v1?key=abc123def456&page=2",
        "messages": [HumanMessage(f"use {KEY}")],
    }
    text = to_text(value, 10_000)
    for leaked in (KEY, "plain-looking-value", "abcdefghijklmnop", "hidden-value", "abc123def"):
        assert leaked not in text
    decoded = json.loads(text)
    assert decoded["api_key"] == decoded["secret"] == "[REDACTED]"
    assert decoded["client"] == "<Client>"
    assert decoded["url"] == "https://host/v1?key=[REDACTED]&page=2"
    header = to_text(f"Authorization: Bearer {KEY}", 100)
    assert KEY not in header and header.startswith("Authorization: Bearer [REDACTED]")


def test_content_is_valid_json_whatever_the_values() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    text = to_text(
        {
            "path": "report-\udcff.txt",
            "big": 2**70,
            "nan": float("nan"),
            "when": datetime(2025, 1, 2, tzinfo=timezone.utc),
            "loop": loop,
        },
        10_000,
    )
    text.encode("utf-8")  # strict UTF-8
    decoded = json.loads(text)  # strict JSON
    assert decoded["path"] == "report-\ufffd.txt" and decoded["big"] == str(2**70)
    assert decoded["nan"] == "NaN" and decoded["when"] == "2025-01-02T00:00:00+00:00"
    assert to_text("a\udc80b", 100) == "a\ufffdb"


def test_secrets_are_redacted_before_truncation() -> None:
    # Cut in the middle of a key, the rest would no longer look like one.
    text = to_text(f"{'x' * 20} {KEY} tail", 36)
    assert text == "x" * 20 + " [REDACTED] tail"
    cut = to_text(f"{'x' * 20} {KEY} tail", 25)
    assert cut.startswith("x" * 20 + " [RED") and KEY[:8] not in cut
    assert truncate("abcdef", 3) == "abc…[3 more chars]" and truncate("abc", 0) == ""
