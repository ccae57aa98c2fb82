"""The provider-SDK layer's core, shared by :mod:`agentos_obs.integrations.openai` and
:mod:`agentos_obs.integrations.anthropic` (which only say how to read their SDK's objects).

Each wrapped ``create`` method turns into one :class:`SdkCall`:

* Inside a framework model call (the LangChain or LlamaIndex LLM / embedding span left in
  the caller's context, see :mod:`agentos_obs.integrations._current`) the request *attaches*
  to that span: the provider's exact usage, read from the SDK response, is put on it
  (``llm.usage.source = "sdk"``; several requests inside one span — LlamaIndex embedding
  batches — add up). The framework then keeps it instead of its own reading, so nothing is
  counted twice; when the SDK saw no usage the framework estimates, as without this layer.
* Anywhere else (no framework, or a framework span of another kind such as a retriever that
  embeds its query, or LangChain embeddings, which emit no callbacks) the request gets a
  span of its own, LLM or EMBEDDING, a child of that framework span or of the AgentOS span
  active in the caller's context. It starts *before* the request is sent, so a budget in
  raise mode refuses the call from the span's start; it ends when the response — or, for a
  stream, its last chunk — has been read, with exact usage, else an estimate.

Streams are handed back wrapped (:mod:`agentos_obs.integrations._sdk_streams`): the same
iteration, context-manager and ``close()`` behaviour, other attributes passed through. A
wrapped stream that is dropped unread ends its span as CANCELLED when it is collected.

Never breaks the host: a failure of ours is reported through ``_guard`` and the SDK call goes
ahead untouched; the SDK's own results and exceptions pass through unchanged.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import agentos_obs.attributes as attr
from agentos_obs._internal.guard import report
from agentos_obs._internal.jsonsafe import dumps
from agentos_obs.errors import BudgetExceeded, ConfigurationError
from agentos_obs.integrations._content import redact, to_text
from agentos_obs.integrations._current import framework_span
from agentos_obs.integrations._estimation import record_estimate
from agentos_obs.integrations._messages import chat_messages, tool_definitions
from agentos_obs.pricing._usage import Usage
from agentos_obs.tracing._kinds import SpanKind, SpanStatus

if TYPE_CHECKING:
    from agentos_obs.tracing._spans import Span
    from agentos_obs.tracing._tracer import Tracer

__all__ = [
    "Accumulator",
    "Outcome",
    "Request",
    "SdkCall",
    "SdkLayer",
    "begin",
    "call_through",
    "failed",
    "finished",
]

SDK_SOURCE = "sdk"
_CONTENT_PARAMS = frozenset(
    {
        "messages",
        "input",
        "prompt",
        "system",
        "tools",
        "functions",
        "extra_headers",
        "extra_query",
        "extra_body",
        "timeout",
        "stream_options",
        "metadata",
        "user",
    }
)


class Outcome:
    """What a response said: usage (None when it carried none), model, the answer."""

    __slots__ = ("finish_reason", "model", "text", "tool_calls", "usage")

    def __init__(
        self,
        usage: Usage | None = None,
        model: str | None = None,
        text: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
    ) -> None:
        self.usage = usage
        self.model = model
        self.text = text
        self.tool_calls = tool_calls or []
        self.finish_reason = finish_reason


class Accumulator(Protocol):
    """Reads a stream's chunks as they pass (provider specific)."""

    def add(self, chunk: Any) -> bool:
        """Read one chunk; True when it brought content or a tool call."""

    def outcome(self) -> Outcome: ...


class Request:
    """What the wrapper knows before sending: kind, model, and the request's content (held
    by reference to estimate a call without usage; recorded only with content capture)."""

    __slots__ = ("kind", "messages", "model", "name", "params", "prompt", "stream", "tools")

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        kwargs: dict[str, Any],
        *,
        messages: Any = None,
        prompt: Any = None,
        tools: Any = None,
    ) -> None:
        self.name = name
        self.kind = kind
        model = kwargs.get("model")
        self.model = model if isinstance(model, str) and model else None
        self.stream = kwargs.get("stream") is True
        self.messages = messages
        self.prompt = prompt
        self.tools = tools
        self.params = {
            k: v
            for k, v in kwargs.items()
            if k not in _CONTENT_PARAMS and isinstance(v, (str, int, float, bool, type(None)))
        }


class SdkLayer:
    """One provider's layer: its tracer, its patches, and whether it is on."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.tracer: Tracer | None = None
        self.active = False
        self._patches: list[tuple[type, str, Any]] = []
        self._lock = threading.Lock()
        self.usage_lock = threading.Lock()

    def resolve_tracer(self) -> Tracer:
        if self.tracer is not None:
            return self.tracer
        from agentos_obs.stack import get_tracer

        return get_tracer()

    def set_tracer(self, tracer: Tracer | None) -> None:
        from agentos_obs.tracing._tracer import Tracer

        if tracer is not None and not isinstance(tracer, Tracer):
            raise ConfigurationError(f"tracer must be an agentos_obs.Tracer, got {tracer!r}")
        self.tracer = tracer

    # -- patches ---------------------------------------------------------------------
    def patch(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` with ``make(original)`` once (kept to restore it)."""
        with self._lock:
            if any(o is owner and n == name for o, n, _ in self._patches):
                return
            original = owner.__dict__.get(name)
            if original is None:
                return
            wrapper = make(original)
            wrapper.__wrapped__ = original
            wrapper.__agentos_obs__ = True
            setattr(owner, name, wrapper)
            self._patches.append((owner, name, original))

    def unpatch_all(self) -> None:
        with self._lock:
            for owner, name, original in reversed(self._patches):
                setattr(owner, name, original)
            self._patches.clear()

    @property
    def patched(self) -> list[str]:
        return [f"{o.__module__}.{o.__qualname__}.{n}" for o, n, _ in self._patches]


def _is_framework_host(span: Span | None, kind: SpanKind) -> bool:
    return span is not None and span.kind is kind and not span.ended


class SdkCall:
    """One request through the SDK: its span (attached or its own) from start to end."""

    __slots__ = ("_done", "attached", "layer", "request", "span", "tracer")

    def __init__(self, layer: SdkLayer, request: Request) -> None:
        self.layer = layer
        self.request = request
        self.attached = False
        self.span: Span | None = None
        self.tracer: Tracer | None = None
        self._done = False

    @property
    def framework_call(self) -> bool:
        """True when a framework made this request (its model span holds it)."""
        return self.attached

    def start(self) -> None:
        """Find or open the span. A BudgetExceeded from the span's start propagates: the
        request is then never sent."""
        request = self.request
        host = framework_span()
        if _is_framework_host(host, request.kind):
            assert host is not None
            self.attached = True
            self.span = host
            self.tracer = host.tracer
            return
        tracer = host.tracer if host is not None and host.tracer is not None else None
        if tracer is None:
            tracer = self.layer.resolve_tracer()
        self.tracer = tracer
        attributes: dict[str, Any] = {attr.FRAMEWORK: self.layer.provider}
        if request.model:
            attributes[attr.LLM_REQUEST_MODEL] = request.model
        if request.stream:
            attributes[attr.LLM_STREAMING] = True
        if request.params:
            attributes[attr.LLM_INVOCATION_PARAMS] = dumps(redact(request.params))
        config = tracer.config
        if config.capture_content:
            limit = config.max_content_length
            if request.messages is not None:
                attributes[attr.LLM_INPUT_MESSAGES] = to_text(
                    chat_messages(request.messages), limit
                )
            elif request.prompt is not None:
                attributes[attr.INPUT_VALUE] = to_text(request.prompt, limit)
            if request.tools:
                attributes[attr.LLM_TOOLS] = to_text(tool_definitions(request.tools), limit)
        span = tracer.begin_span(
            request.name,
            request.kind,
            parent=host,
            use_context=host is None,
            attributes=attributes,
        )
        if request.model:
            span.model_name = request.model
        span.provider = self.layer.provider
        self.span = span

    def first_delta(self) -> None:
        span = self.span
        if span is not None and not self.attached:
            span.attributes.setdefault(attr.LLM_TIME_TO_FIRST_TOKEN_MS, span.duration_ms)

    # -- ends ---------------------------------------------------------------------------
    def succeed(self, outcome: Outcome) -> None:
        if self._done:
            return
        self._done = True
        span, tracer = self.span, self.tracer
        if span is None or tracer is None:
            return
        model = outcome.model or span.model_name or self.request.model
        if outcome.usage is not None:
            self._record_exact(span, tracer, outcome.usage, model)
        elif not self.attached:
            if model:
                span.model_name = model
            record_estimate(
                tracer,
                span,
                model=model,
                provider=span.provider,
                messages=self.request.messages,
                prompt=self.request.prompt,
                tools=self.request.tools,
                answer=_Answer(outcome),
            )
        if self.attached:
            return  # the framework ends its span
        if outcome.finish_reason:
            span.attributes[attr.LLM_FINISH_REASON] = outcome.finish_reason
        config = tracer.config
        if config.capture_content and self.request.kind is SpanKind.LLM:
            answer: dict[str, Any] = {"role": "assistant", "content": outcome.text}
            if outcome.tool_calls:
                answer["tool_calls"] = outcome.tool_calls
            span.attributes[attr.LLM_OUTPUT_MESSAGES] = to_text(answer, config.max_content_length)
        tracer.end_span(span)

    def _record_exact(self, span: Span, tracer: Tracer, usage: Usage, model: str | None) -> None:
        with self.layer.usage_lock:
            if span.attributes.get(attr.LLM_USAGE_SOURCE) == SDK_SOURCE and span.usage_recorded:
                # Another request inside the same framework span (an embedding batch).
                usage = usage + Usage(
                    span.input_tokens,
                    span.output_tokens,
                    span.cache_read_tokens,
                    span.cache_write_tokens,
                    span.reasoning_tokens,
                )
            span.attributes[attr.LLM_USAGE_SOURCE] = SDK_SOURCE
            span.attributes.pop(attr.LLM_USAGE_ESTIMATED, None)
            span.attributes.pop(attr.LLM_USAGE_ESTIMATE_METHOD, None)
            tracer.record_usage_from(
                span, usage, model=model, provider=span.provider or self.layer.provider
            )

    def fail(self, error: BaseException) -> None:
        """The request raised (nothing billed that we could know of)."""
        if self._done:
            return
        self._done = True
        if self.attached or self.span is None or self.tracer is None:
            return
        self.tracer.end_span(self.span, error=error)

    def stream_ended(self, outcome: Outcome, error: BaseException | None) -> None:
        """A stream ran out, failed or was closed: what it carried is recorded either way."""
        if error is None:
            self.succeed(outcome)
            return
        if self._done:
            return
        span = self.span
        if outcome.usage is not None or outcome.text or outcome.tool_calls:
            # Part of the answer came back: the request was processed all the same.
            self.succeed_partial(outcome, error)
        elif not self.attached and span is not None and self.tracer is not None:
            self._done = True
            self.tracer.end_span(span, error=error)
        else:
            self._done = True

    def succeed_partial(self, outcome: Outcome, error: BaseException) -> None:
        span, tracer = self.span, self.tracer
        if span is None or tracer is None or self.attached:
            self.succeed(outcome)
            return
        self._done = True
        model = outcome.model or span.model_name or self.request.model
        if outcome.usage is not None:
            self._record_exact(span, tracer, outcome.usage, model)
        else:
            record_estimate(
                tracer,
                span,
                model=model,
                provider=span.provider,
                messages=self.request.messages,
                prompt=self.request.prompt,
                tools=self.request.tools,
                answer=_Answer(outcome),
            )
        tracer.end_span(span, error=error)

    def abandon(self) -> None:
        """A wrapped stream was collected unread: end its span as CANCELLED."""
        if self._done:
            return
        self._done = True
        span, tracer = self.span, self.tracer
        if span is None or tracer is None or self.attached:
            return
        try:
            span.attributes["agentos.stream_abandoned"] = True
            tracer.end_span(span, status=SpanStatus.CANCELLED)
        except Exception as exc:
            report(f"{self.layer.provider}.stream", exc)


class _Answer:
    """An :class:`Outcome` in the shape the estimator reads an answer from."""

    __slots__ = ("content", "tool_calls")

    def __init__(self, outcome: Outcome) -> None:
        self.content = outcome.text
        self.tool_calls = outcome.tool_calls


# -- call plumbing used by the provider wrappers ---------------------------------------------


def begin(layer: SdkLayer, request: Request) -> SdkCall | None:
    """The call's span started, or None when something of ours failed (the request then
    goes ahead untraced). BudgetExceeded propagates."""
    if not layer.active:
        return None
    call = SdkCall(layer, request)
    try:
        call.start()
    except BudgetExceeded:
        raise
    except Exception as exc:
        report(f"{layer.provider}.start", exc)
        return None
    return call


def failed(call: SdkCall, error: BaseException) -> None:
    try:
        call.fail(error)
    except Exception as exc:
        report(f"{call.layer.provider}.error", exc)


def call_through(
    call: SdkCall,
    original: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    observe: Callable[[Any], Any],
) -> Any:
    """Send the request, then observe its result. An async SDK method (whose decorator
    hides that it is one) returns an awaitable: it is observed once awaited."""
    try:
        result = original(*args, **kwargs)
    except BaseException as exc:
        failed(call, exc)
        raise
    if inspect.isawaitable(result):
        return _observed_later(call, result, observe)
    return observe(result)


async def _observed_later(call: SdkCall, pending: Any, observe: Callable[[Any], Any]) -> Any:
    try:
        result = await pending
    except BaseException as exc:
        failed(call, exc)
        raise
    return observe(result)


def finished(call: SdkCall, read: Callable[[], Outcome]) -> None:
    try:
        call.succeed(read())
    except Exception as exc:
        report(f"{call.layer.provider}.response", exc)
