"""The wrapped ``openai`` SDK methods: chat completions (``create``, ``parse``), embeddings and
the Responses API, sync and async. See :mod:`agentos_obs.integrations._sdk` for what a call
records and where."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from agentos_obs._internal.guard import report
from agentos_obs.integrations import _sdk
from agentos_obs.integrations import _sdk_streams as _streams
from agentos_obs.integrations._options import usage_options
from agentos_obs.integrations._sdk import Accumulator, Outcome, Request, SdkCall, SdkLayer
from agentos_obs.integrations.openai._readers import (
    ChatChunks,
    ResponseEvents,
    chat_outcome,
    embedding_outcome,
    response_outcome,
)
from agentos_obs.tracing._kinds import SpanKind

__all__ = ["LAYER", "patch_all"]

LAYER = SdkLayer("openai")


def _chat_request(kwargs: dict[str, Any]) -> Request:
    return Request(
        "openai.chat.completions",
        SpanKind.LLM,
        kwargs,
        messages=kwargs.get("messages"),
        tools=kwargs.get("tools") or kwargs.get("functions"),
    )


def _embedding_request(kwargs: dict[str, Any]) -> Request:
    inputs = kwargs.get("input")
    if isinstance(inputs, list) and all(isinstance(v, str) for v in inputs):
        prompt: Any = "\n".join(inputs)
    else:
        prompt = inputs  # token arrays are not counted again: the response has the usage
    return Request("openai.embeddings", SpanKind.EMBEDDING, kwargs, prompt=prompt)


def _response_request(kwargs: dict[str, Any]) -> Request:
    value = kwargs.get("input")
    messages: list[Any] = []
    if kwargs.get("instructions"):
        messages.append({"role": "system", "content": kwargs["instructions"]})
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
    elif isinstance(value, list):
        messages.extend(value)
    return Request(
        "openai.responses", SpanKind.LLM, kwargs, messages=messages, tools=kwargs.get("tools")
    )


def _ask_stream_usage(call: SdkCall, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The opt-in: a framework's streaming chat completion asks for its usage (see
    :mod:`agentos_obs.integrations._options` for what it changes)."""
    if (
        call.framework_call
        and kwargs.get("stream") is True
        and "stream_options" not in kwargs
        and usage_options().stream_usage
    ):
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


def _observer(
    call: SdkCall, read: Callable[[Any], Outcome], chunks: Callable[[], Accumulator] | None
) -> Callable[[Any], Any]:
    """What to do with what the SDK returned: a stream is wrapped, a response read."""

    def observe(result: Any) -> Any:
        try:
            if _streams.is_raw_response(result):
                raw_type = (
                    _streams.ObservedAsyncRawResponse
                    if inspect.iscoroutinefunction(result.parse)
                    else _streams.ObservedRawResponse
                )
                return raw_type(result, observe)
            if chunks is not None and call.request.stream:
                if hasattr(result, "__aiter__"):
                    return _streams.ObservedAsyncStream(result, call, chunks())
                if hasattr(result, "__iter__") and not hasattr(result, "choices"):
                    return _streams.ObservedStream(result, call, chunks())
        except Exception as exc:
            report("openai.response", exc)
            return result
        _sdk.finished(call, lambda: read(result))
        return result

    return observe


def _wrap(
    make_request: Callable[[dict[str, Any]], Request],
    read: Callable[[Any], Outcome],
    chunks: Callable[[], Accumulator] | None,
) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _sdk.begin(LAYER, make_request(kwargs)) if LAYER.active else None
            if call is None:
                return original(self, *args, **kwargs)
            kwargs = _ask_stream_usage(call, kwargs)
            observe = _observer(call, read, chunks)
            return _sdk.call_through(call, original, (self, *args), kwargs, observe)

        return wrapper

    return make


def patch_all() -> None:
    """Wrap every supported method of the installed ``openai`` package (once)."""
    import importlib

    targets: list[tuple[str, tuple[str, ...], tuple[str, ...], Callable[[Any], Any]]] = [
        (
            "openai.resources.chat.completions",
            ("Completions", "AsyncCompletions"),
            ("create", "parse"),
            _wrap(_chat_request, chat_outcome, ChatChunks),
        ),
        (
            "openai.resources.embeddings",
            ("Embeddings", "AsyncEmbeddings"),
            ("create",),
            _wrap(_embedding_request, embedding_outcome, None),
        ),
        (
            "openai.resources.responses",
            ("Responses", "AsyncResponses"),
            ("create",),
            _wrap(_response_request, response_outcome, ResponseEvents),
        ),
    ]
    for module_name, classes, methods, make in targets:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # an SDK version without this API
        for class_name in classes:
            owner = getattr(module, class_name, None)
            if isinstance(owner, type):
                for method in methods:
                    LAYER.patch(owner, method, make)
