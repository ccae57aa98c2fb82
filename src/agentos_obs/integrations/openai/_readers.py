"""Readers of the ``openai`` SDK's response objects: usage, model, answer; and the stream
accumulators. Duck-typed (SDK objects or dicts), never raise on odd shapes."""

from __future__ import annotations

from typing import Any

from agentos_obs.integrations._sdk import Outcome
from agentos_obs.pricing._usage import read_field, usage_from_openai

__all__ = ["ChatChunks", "ResponseEvents", "chat_outcome", "embedding_outcome", "response_outcome"]


def _model(obj: Any) -> str | None:
    model = read_field(obj, "model")
    return model if isinstance(model, str) and model else None


def _usage(obj: Any) -> Any:
    usage = usage_from_openai(read_field(obj, "usage"))
    return None if usage is None or usage.is_empty else usage


def _call(call: Any) -> dict[str, Any] | None:
    function = read_field(call, "function")
    name = read_field(function, "name")
    if not isinstance(name, str) or not name:
        return None
    call_id = read_field(call, "id")
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "name": name,
        "arguments": read_field(function, "arguments") or "",
    }


def chat_outcome(completion: Any) -> Outcome:
    """A ``ChatCompletion``."""
    choices = read_field(completion, "choices") or []
    first = choices[0] if choices else None
    message = read_field(first, "message")
    content = read_field(message, "content")
    calls = [c for c in (_call(x) for x in read_field(message, "tool_calls") or []) if c]
    reason = read_field(first, "finish_reason")
    return Outcome(
        _usage(completion),
        _model(completion),
        content if isinstance(content, str) else "",
        calls,
        reason if isinstance(reason, str) else None,
    )


def embedding_outcome(response: Any) -> Outcome:
    """A ``CreateEmbeddingResponse`` (its usage is ``prompt_tokens`` only)."""
    return Outcome(_usage(response), _model(response))


def response_outcome(response: Any) -> Outcome:
    """A Responses API ``Response``."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in read_field(response, "output") or []:
        kind = read_field(item, "type")
        if kind == "message":
            for part in read_field(item, "content") or []:
                value = read_field(part, "text")
                if isinstance(value, str):
                    text.append(value)
        elif kind == "function_call":
            name = read_field(item, "name")
            if isinstance(name, str) and name:
                call_id = read_field(item, "call_id")
                calls.append(
                    {
                        "id": call_id if isinstance(call_id, str) else None,
                        "name": name,
                        "arguments": read_field(item, "arguments") or "",
                    }
                )
    status = read_field(response, "status")
    return Outcome(
        _usage(response),
        _model(response),
        "".join(text),
        calls,
        status if isinstance(status, str) else None,
    )


class ChatChunks:
    """Chat completion chunks: text and tool-call deltas, the usage chunk, the model."""

    __slots__ = ("_calls", "_model", "_reason", "_text", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._model: str | None = None
        self._reason: str | None = None
        self._usage: Any = None

    def add(self, chunk: Any) -> bool:
        if self._model is None:
            self._model = _model(chunk)
        usage = _usage(chunk)
        if usage is not None:
            self._usage = usage
        delta_seen = False
        for choice in read_field(chunk, "choices") or []:
            delta = read_field(choice, "delta")
            content = read_field(delta, "content")
            if isinstance(content, str) and content:
                self._text.append(content)
                delta_seen = True
            for call in read_field(delta, "tool_calls") or []:
                delta_seen = True
                index = read_field(call, "index")
                slot = self._calls.setdefault(
                    index if isinstance(index, int) else len(self._calls),
                    {"id": None, "name": "", "arguments": ""},
                )
                call_id = read_field(call, "id")
                if isinstance(call_id, str):
                    slot["id"] = call_id
                function = read_field(call, "function")
                name = read_field(function, "name")
                if isinstance(name, str):
                    slot["name"] += name
                arguments = read_field(function, "arguments")
                if isinstance(arguments, str):
                    slot["arguments"] += arguments
            reason = read_field(choice, "finish_reason")
            if isinstance(reason, str):
                self._reason = reason
        return delta_seen

    def outcome(self) -> Outcome:
        calls = [self._calls[i] for i in sorted(self._calls) if self._calls[i]["name"]]
        return Outcome(self._usage, self._model, "".join(self._text), calls, self._reason)


class ResponseEvents:
    """Responses API stream events: text deltas, and the final ``response.completed``."""

    __slots__ = ("_final", "_text")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._final: Any = None

    def add(self, event: Any) -> bool:
        kind = read_field(event, "type")
        if kind == "response.output_text.delta":
            delta = read_field(event, "delta")
            if isinstance(delta, str) and delta:
                self._text.append(delta)
                return True
        elif kind in ("response.function_call_arguments.delta", "response.output_item.added"):
            item = read_field(event, "item")
            return kind != "response.output_item.added" or read_field(item, "type") in (
                "function_call",
            )
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final = read_field(event, "response")
        return False

    def outcome(self) -> Outcome:
        if self._final is not None:
            done = response_outcome(self._final)
            if not done.text:
                done.text = "".join(self._text)
            return done
        return Outcome(text="".join(self._text))
