"""What each LlamaIndex instrumentation event does to the span it points at.

Events are matched by class name along the class's MRO (so ``SparseEmbeddingStartEvent``
reacts like ``EmbeddingStartEvent``) without importing the event modules. Events with no
reaction (workflow events, SpanDropEvent, agent events LlamaIndex 0.14 never dispatches)
cost one dictionary lookup.

The bridge calls :func:`reaction_for`; a reaction calls back only the few bridge methods
named by :class:`SpanEnds`, so this module never imports the bridge (no import cycle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import agentos_obs.attributes as attr
import agentos_obs.integrations.llama_index._extract as ex
from agentos_obs.integrations._content import to_text
from agentos_obs.integrations._estimation import record_estimate
from agentos_obs.integrations._messages import tool_definitions
from agentos_obs.integrations._options import usage_options
from agentos_obs.integrations.llama_index._state import (
    EMBEDDING_INPUT_COUNT,
    EMBEDDING_MODEL,
    OPEN,
    PARKED_EVENT,
    SpanState,
)
from agentos_obs.tracing._spans import Span, SpanStatus

if TYPE_CHECKING:
    from agentos_obs.pricing._usage import Usage
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["SpanEnds", "reaction_for"]


class SpanEnds(Protocol):
    """What a reaction needs from the bridge: ending a span, and the usage bookkeeping."""

    def finish(
        self,
        state: SpanState,
        *,
        status: SpanStatus | None = None,
        error: BaseException | None = None,
    ) -> None: ...

    def already_counted(self, response: object) -> bool: ...

    def remember_counted(self, response: object) -> None: ...

    def record_usage(self, state: SpanState, usage: Usage, model: str | None) -> None: ...


Reaction = Callable[[SpanEnds, SpanState, Any], None]

RERANK_MODEL = "rerank.model_name"
RERANK_TOP_N = "rerank.top_n"
RERANK_INPUT_COUNT = "rerank.input_count"
RERANK_OUTPUT_COUNT = "rerank.output_count"

_perf_ns = time.perf_counter_ns


def _capture(tracer: Tracer, span: Span, key: str, value: Any) -> None:
    """Record content only when the user opted in; redacted and truncated."""
    config = tracer.config
    if config.capture_content and value is not None:
        span.attributes[key] = to_text(value, config.max_content_length)


# -- LLM ------------------------------------------------------------------------------------


def _llm_start(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    state.llm_call = True
    span = state.span
    if attr.LLM_REQUEST_MODEL not in span.attributes:
        model = ex.model_from_payload(getattr(event, "model_dict", None))
        if model is not None:
            span.attributes[attr.LLM_REQUEST_MODEL] = model
    messages = getattr(event, "messages", None)
    params = getattr(event, "additional_kwargs", None)
    tools = params.get("tools") if isinstance(params, dict) else None
    if usage_options().estimate:
        state.request = (
            messages if messages is not None else getattr(event, "prompt", None),
            tools,
        )
    if state.tracer.config.capture_content:
        _capture(
            state.tracer,
            span,
            attr.LLM_INPUT_MESSAGES,
            messages if messages is not None else getattr(event, "prompt", None),
        )
        if params:
            _capture(
                state.tracer,
                span,
                attr.LLM_INVOCATION_PARAMS,
                {k: v for k, v in params.items() if k != "tools"},
            )
        if tools:
            _capture(state.tracer, span, attr.LLM_TOOLS, tool_definitions(tools))


def _llm_progress(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    # Time to the first content or tool-call delta: OpenAI's stream opens with a chunk that
    # has a role and no content, which LlamaIndex reports as progress too.
    if state.first_token_ns == 0 and ex.has_delta(getattr(event, "response", None)):
        state.first_token_ns = now = _perf_ns()
        state.span.attributes[attr.LLM_TIME_TO_FIRST_TOKEN_MS] = (now - state.start_ns) / 1e6


def _descendant_has_usage(span: Span) -> bool:
    pending = list(span.children)
    while pending:
        child = pending.pop()
        if child.has_usage:
            return True
        pending.extend(child.children)
    return False


def _llm_end(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    response = getattr(event, "response", None)
    state.response_seen = True
    span = state.span
    if response is not None:
        _record_response(bridge, state, span, response)
    if state.mode == PARKED_EVENT:
        bridge.finish(state)


def _record_response(bridge: SpanEnds, state: SpanState, span: Span, response: Any) -> None:
    model = ex.response_model(response) or span.attributes.get(attr.LLM_REQUEST_MODEL)
    model = model if isinstance(model, str) else None
    reason = ex.finish_reason(response)
    if reason is not None:
        span.attributes[attr.LLM_FINISH_REASON] = reason
    if state.tracer.config.capture_content:
        message = getattr(response, "message", None)
        _capture(
            state.tracer,
            span,
            attr.LLM_OUTPUT_MESSAGES,
            message if message is not None else getattr(response, "text", None),
        )
    if bridge.already_counted(response) or _descendant_has_usage(span):
        # A wrapper of a call whose usage is already on another span: remember this response
        # too, so a wrapper of the wrapper is recognised as well.
        bridge.remember_counted(response)
        span.set_attribute(attr.LLM_WRAPPER, True)  # not a call of its own
        if model and not span.model_name:
            span.model_name = model
        return
    usage = ex.usage_of(response, state.provider)
    if usage is None:
        if model and not span.model_name:
            span.model_name = model
        _estimate(state, response, model)
        bridge.remember_counted(response)
        return
    bridge.record_usage(state, usage, model)
    bridge.remember_counted(response)


def _estimate(state: SpanState, response: Any, model: str | None) -> None:
    """A call that ended without usage (every LlamaIndex stream, unless it asked for it):
    tokens estimated from the request seen at its start and the answer."""
    if state.request is None or not ex.is_response(response):
        return
    inputs, tools = state.request
    record_estimate(
        state.tracer,
        state.span,
        model=model or state.span.model_name or None,
        provider=state.provider,
        messages=None if isinstance(inputs, str) else inputs,
        prompt=inputs if isinstance(inputs, str) else None,
        tools=tools,
        answer=response,
    )


def _exception(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    """Mid-stream errors arrive only as this event, after LlamaIndex closed the span."""
    if state.mode == OPEN:  # an open span: its span_drop carries the error
        return
    error = getattr(event, "exception", None)
    if isinstance(error, BaseException):
        bridge.finish(state, error=error)
    else:
        bridge.finish(state, status=SpanStatus.ERROR)


# -- embeddings, retrieval, queries, rerank ---------------------------------------------------


def _embedding_start(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    model = ex.model_from_payload(getattr(event, "model_dict", None))
    if model is not None:
        state.span.attributes[EMBEDDING_MODEL] = model


def _embedding_end(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    chunks = getattr(event, "chunks", None)
    if isinstance(chunks, (list, tuple)):
        state.span.attributes[EMBEDDING_INPUT_COUNT] = len(chunks)


def _retrieval_start(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    if state.tracer.config.capture_content:
        query = ex.plain(getattr(event, "str_or_query_bundle", None))
        _capture(state.tracer, state.span, attr.RETRIEVAL_QUERY, query)


def _retrieval_end(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    nodes = getattr(event, "nodes", None)
    count, scores = ex.retrieval_summary(nodes)
    span = state.span
    span.attributes[attr.RETRIEVAL_DOCUMENT_COUNT] = count
    if scores:
        span.attributes[attr.RETRIEVAL_TOP_SCORES] = scores
    if state.tracer.config.capture_content and count:
        _capture(state.tracer, span, attr.RETRIEVAL_DOCUMENTS, ex.documents(nodes))


def _query_start(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    if state.tracer.config.capture_content:
        query = ex.plain(getattr(event, "query", None))
        _capture(state.tracer, state.span, attr.INPUT_VALUE, query)


def _query_end(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    if state.tracer.config.capture_content:
        _capture(
            state.tracer,
            state.span,
            attr.OUTPUT_VALUE,
            ex.output_text(getattr(event, "response", None)),
        )


def _rerank_start(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    span = state.span
    model = getattr(event, "model_name", None)
    if isinstance(model, str) and model:
        span.attributes[RERANK_MODEL] = model
    top_n = getattr(event, "top_n", None)
    if isinstance(top_n, int) and not isinstance(top_n, bool):
        span.attributes[RERANK_TOP_N] = top_n
    nodes = getattr(event, "nodes", None)
    if isinstance(nodes, (list, tuple)):
        span.attributes[RERANK_INPUT_COUNT] = len(nodes)


def _rerank_end(bridge: SpanEnds, state: SpanState, event: Any) -> None:
    nodes = getattr(event, "nodes", None)
    if isinstance(nodes, (list, tuple)):
        state.span.attributes[RERANK_OUTPUT_COUNT] = len(nodes)


_REACTIONS: dict[str, Reaction] = {
    "LLMChatStartEvent": _llm_start,
    "LLMCompletionStartEvent": _llm_start,
    "LLMChatInProgressEvent": _llm_progress,
    "LLMCompletionInProgressEvent": _llm_progress,
    "LLMChatEndEvent": _llm_end,
    "LLMCompletionEndEvent": _llm_end,
    "ExceptionEvent": _exception,
    "EmbeddingStartEvent": _embedding_start,
    "EmbeddingEndEvent": _embedding_end,
    "SparseEmbeddingEndEvent": _embedding_end,
    "RetrievalStartEvent": _retrieval_start,
    "RetrievalEndEvent": _retrieval_end,
    "QueryStartEvent": _query_start,
    "QueryEndEvent": _query_end,
    "ReRankStartEvent": _rerank_start,
    "ReRankEndEvent": _rerank_end,
}


def reaction_for(bridge: SpanEnds, cls: type) -> Callable[[SpanState, Any], None] | None:
    """The reaction to events of ``cls`` bound to ``bridge``, or None to ignore them."""
    for klass in cls.__mro__:
        reaction = _REACTIONS.get(klass.__name__)
        if reaction is not None:

            def bound(state: SpanState, event: Any, _r: Reaction = reaction) -> None:
                _r(bridge, state, event)

            return bound
    return None
