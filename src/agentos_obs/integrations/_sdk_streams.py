"""Wrappers around what an SDK returns, observed for the provider-SDK layer
(:mod:`agentos_obs.integrations._sdk`): streams read chunk by chunk as the app reads them,
and raw responses whose ``parse()`` result is read. Each behaves as the object it wraps
(iteration, context manager, ``close()``; other attributes are passed through)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from agentos_obs._internal.guard import report
from agentos_obs.integrations._sdk import Accumulator, SdkCall

__all__ = [
    "ObservedAsyncRawResponse",
    "ObservedAsyncStream",
    "ObservedRawResponse",
    "ObservedStream",
    "is_raw_response",
]


class _StreamBase:
    __slots__ = ("__weakref__", "_acc", "_call", "_delta_seen", "_ended", "_stream")

    def __init__(self, stream: Any, call: SdkCall, acc: Accumulator) -> None:
        self._stream = stream
        self._call = call
        self._acc = acc
        self._delta_seen = False
        self._ended = False
        weakref.finalize(self, call.abandon)

    def _chunk(self, chunk: Any) -> None:
        try:
            if self._acc.add(chunk) and not self._delta_seen:
                self._delta_seen = True
                self._call.first_delta()
        except Exception as exc:
            report(f"{self._call.layer.provider}.stream", exc)

    def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._call.stream_ended(self._acc.outcome(), error)
        except Exception as exc:
            report(f"{self._call.layer.provider}.stream", exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Closed(Exception):
    """The consumer closed the stream before its end."""


class ObservedStream(_StreamBase):
    """A sync SDK stream, observed chunk by chunk; behaves as the stream it wraps."""

    __slots__ = ("_iterator",)

    def __init__(self, stream: Any, call: SdkCall, acc: Accumulator) -> None:
        super().__init__(stream, call, acc)
        self._iterator: Any = None

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._stream)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunk(chunk)
        return chunk

    def __enter__(self) -> ObservedStream:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._stream.__exit__(*exc_info)
        finally:
            self._end(exc_info[1] if exc_info[1] is not None else None)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._end(None)


class ObservedAsyncStream(_StreamBase):
    """An async SDK stream, observed chunk by chunk; behaves as the stream it wraps."""

    __slots__ = ("_iterator",)

    def __init__(self, stream: Any, call: SdkCall, acc: Accumulator) -> None:
        super().__init__(stream, call, acc)
        self._iterator: Any = None

    def __aiter__(self) -> ObservedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._chunk(chunk)
        return chunk

    async def __aenter__(self) -> ObservedAsyncStream:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._stream.__aexit__(*exc_info)
        finally:
            self._end(exc_info[1] if exc_info[1] is not None else None)

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._end(None)


class ObservedRawResponse:
    """A raw-response wrapper (``with_raw_response``): its ``parse()`` result is observed
    (langchain-anthropic calls every request this way)."""

    __slots__ = ("_observe", "_parsed", "_raw")

    def __init__(self, raw: Any, observe: Callable[[Any], Any]) -> None:
        self._raw = raw
        self._observe = observe
        self._parsed: Any = _UNSET

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self._raw.parse(*args, **kwargs)
        if args or kwargs:
            return parsed  # parsed into another type: not the response we read
        if self._parsed is _UNSET:
            self._parsed = self._observe(parsed)
        return self._parsed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class ObservedAsyncRawResponse(ObservedRawResponse):
    __slots__ = ()

    async def parse(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        parsed = await self._raw.parse(*args, **kwargs)
        if args or kwargs:
            return parsed
        if self._parsed is _UNSET:
            self._parsed = self._observe(parsed)
        return self._parsed


_UNSET: Any = object()


def is_raw_response(result: Any) -> bool:
    return callable(getattr(result, "parse", None)) and hasattr(result, "http_response")
