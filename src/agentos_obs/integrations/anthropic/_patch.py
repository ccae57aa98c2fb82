"""The wrapped ``anthropic`` SDK methods: ``messages.create`` (JSON or ``stream=True``, also
through ``with_raw_response``, which langchain-anthropic uses for every call) and the
``messages.stream()`` helper, sync and async, on ``messages`` and ``beta.messages``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from agentos_obs._internal.guard import report
from agentos_obs.integrations import _sdk
from agentos_obs.integrations import _sdk_streams as _streams
from agentos_obs.integrations._sdk import Request, SdkCall, SdkLayer
from agentos_obs.integrations.anthropic._readers import MessageEvents, message_outcome
from agentos_obs.tracing._kinds import SpanKind

__all__ = ["LAYER", "patch_all"]

LAYER = SdkLayer("anthropic")


def _request(kwargs: dict[str, Any], *, stream: bool = False) -> Request:
    messages = list(kwargs.get("messages") or [])
    system = kwargs.get("system")
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    request = Request(
        "anthropic.messages", SpanKind.LLM, kwargs, messages=messages, tools=kwargs.get("tools")
    )
    if stream:
        request.stream = True
    return request


def _observe(call: SdkCall) -> Callable[[Any], Any]:
    def observe(result: Any) -> Any:
        try:
            if _streams.is_raw_response(result):
                raw_type = (
                    _streams.ObservedAsyncRawResponse
                    if inspect.iscoroutinefunction(result.parse)
                    else _streams.ObservedRawResponse
                )
                return raw_type(result, observe)
            if call.request.stream:
                if hasattr(result, "__aiter__"):
                    return _streams.ObservedAsyncStream(result, call, MessageEvents())
                return _streams.ObservedStream(result, call, MessageEvents())
        except Exception as exc:
            report("anthropic.response", exc)
            return result
        _sdk.finished(call, lambda: message_outcome(result))
        return result

    return observe


def _wrap_create(original: Any) -> Any:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _sdk.begin(LAYER, _request(kwargs)) if LAYER.active else None
        if call is None:
            return original(self, *args, **kwargs)
        return _sdk.call_through(call, original, (self, *args), kwargs, _observe(call))

    return create


class _ObservedManager:
    """``messages.stream()``'s context manager: the call ends when the block does, with the
    usage of the message the SDK assembled (``current_message_snapshot``)."""

    __slots__ = ("_call", "_manager", "_stream")

    def __init__(self, manager: Any, call: SdkCall) -> None:
        self._manager = manager
        self._call = call
        self._stream: Any = None

    def _end(self, error: BaseException | None) -> None:
        try:
            outcome = _sdk.Outcome()
            if self._stream is not None:
                try:
                    outcome = message_outcome(self._stream.current_message_snapshot)
                except Exception:  # no event arrived: nothing to read
                    outcome = _sdk.Outcome()
            self._call.stream_ended(outcome, error)
        except Exception as exc:
            report("anthropic.stream", exc)

    def __enter__(self) -> Any:
        try:
            self._stream = self._manager.__enter__()
        except BaseException as exc:
            self._end(exc)
            raise
        return self._stream

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._manager.__exit__(*exc_info)
        finally:
            self._end(exc_info[1])

    async def __aenter__(self) -> Any:
        try:
            self._stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._end(exc)
            raise
        return self._stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._manager.__aexit__(*exc_info)
        finally:
            self._end(exc_info[1])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def _wrap_stream(original: Any) -> Any:
    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _sdk.begin(LAYER, _request(kwargs, stream=True)) if LAYER.active else None
        if call is None:
            return original(self, *args, **kwargs)
        try:
            manager = original(self, *args, **kwargs)
        except BaseException as exc:
            _sdk.failed(call, exc)
            raise
        return _ObservedManager(manager, call)

    return stream


def patch_all() -> None:
    import importlib

    for module_name in ("anthropic.resources.messages", "anthropic.resources.beta.messages"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for class_name in ("Messages", "AsyncMessages"):
            owner = getattr(module, class_name, None)
            if isinstance(owner, type):
                LAYER.patch(owner, "create", _wrap_create)
                LAYER.patch(owner, "stream", _wrap_stream)
