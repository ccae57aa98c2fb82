"""Readers of the ``anthropic`` SDK's objects: a ``Message``'s usage, model and answer; the
stream accumulator (``message_start`` brings the input usage, ``message_delta`` the output
count, cumulative). Duck-typed, never raise on odd shapes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from agentos_obs.integrations._sdk import Outcome
from agentos_obs.pricing._usage import read_field, usage_from_anthropic

__all__ = ["MessageEvents", "message_outcome"]

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _usage_dict(usage: Any) -> dict[str, Any]:
    out = {}
    for key in _USAGE_FIELDS:
        value = read_field(usage, key)
        if value is not None:
            out[key] = value
    return out


def _model(obj: Any) -> str | None:
    model = read_field(obj, "model")
    return model if isinstance(model, str) and model else None


def message_outcome(message: Any) -> Outcome:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in read_field(message, "content") or []:
        kind = read_field(block, "type")
        if kind == "text":
            value = read_field(block, "text")
            if isinstance(value, str):
                text.append(value)
        elif kind == "tool_use":
            name = read_field(block, "name")
            if isinstance(name, str) and name:
                call_id = read_field(block, "id")
                calls.append(
                    {
                        "id": call_id if isinstance(call_id, str) else None,
                        "name": name,
                        "arguments": read_field(block, "input") or {},
                    }
                )
    usage = usage_from_anthropic(read_field(message, "usage"))
    reason = read_field(message, "stop_reason")
    return Outcome(
        None if usage is None or usage.is_empty else usage,
        _model(message),
        "".join(text),
        calls,
        reason if isinstance(reason, str) else None,
    )


class MessageEvents:
    """Raw message stream events, read as they pass."""

    __slots__ = ("_blocks", "_model", "_reason", "_text", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._blocks: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] = {}
        self._model: str | None = None
        self._reason: str | None = None

    def add(self, event: Any) -> bool:
        kind = read_field(event, "type")
        if kind == "message_start":
            message = read_field(event, "message")
            self._model = _model(message)
            self._usage.update(_usage_dict(read_field(message, "usage")))
        elif kind == "content_block_start":
            block = read_field(event, "content_block")
            if read_field(block, "type") == "tool_use":
                index = read_field(event, "index")
                call_id = read_field(block, "id")
                self._blocks[index if isinstance(index, int) else len(self._blocks)] = {
                    "id": call_id if isinstance(call_id, str) else None,
                    "name": read_field(block, "name") or "",
                    "arguments": "",
                }
                return True
        elif kind == "content_block_delta":
            delta = read_field(event, "delta")
            dtype = read_field(delta, "type")
            if dtype == "text_delta":
                value = read_field(delta, "text")
                if isinstance(value, str) and value:
                    self._text.append(value)
                    return True
            elif dtype == "input_json_delta":
                slot = self._blocks.get(read_field(event, "index"))  # type: ignore[arg-type]
                part = read_field(delta, "partial_json")
                if slot is not None and isinstance(part, str):
                    slot["arguments"] += part
                return bool(part)
        elif kind == "message_delta":
            self._usage.update(_usage_dict(read_field(event, "usage")))
            reason = read_field(read_field(event, "delta"), "stop_reason")
            if isinstance(reason, str):
                self._reason = reason
        return False

    def outcome(self) -> Outcome:
        usage = usage_from_anthropic(self._usage) if self._usage else None
        calls = []
        for index in sorted(self._blocks):
            call = dict(self._blocks[index])
            # A stream cut inside the arguments keeps them as the text received.
            with contextlib.suppress(ValueError):
                call["arguments"] = json.loads(call["arguments"]) if call["arguments"] else {}
            calls.append(call)
        return Outcome(
            None if usage is None or usage.is_empty else usage,
            self._model,
            "".join(self._text),
            calls,
            self._reason,
        )
