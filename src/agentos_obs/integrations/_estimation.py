"""Usage estimated for a model call that ended without any: shared by every integration.

The integrations keep a reference to the request they saw start (messages or prompt, tool
definitions) until the call ends: nothing is copied or recorded. Only when the call ends
without provider usage — and estimation is on (:mod:`agentos_obs.integrations._options`) —
are its request and answer counted (:func:`agentos_obs.pricing.estimate_usage`) and the
counts recorded on the span, marked ``llm.usage.estimated`` with the method used. Exact usage
recorded on the span before (by the provider-SDK layer) is never replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import agentos_obs.attributes as attr
from agentos_obs.integrations._messages import answer_of, chat_messages, tool_definitions
from agentos_obs.integrations._options import usage_options
from agentos_obs.pricing._estimate import Estimate, estimate_usage

if TYPE_CHECKING:
    from agentos_obs.tracing._spans import Span
    from agentos_obs.tracing._tracer import Tracer

__all__ = ["has_exact_usage", "record_estimate"]


def has_exact_usage(span: Span) -> bool:
    """True when provider usage is already on ``span`` (not an estimate)."""
    return span.usage_recorded and not span.attributes.get(attr.LLM_USAGE_ESTIMATED)


def record_estimate(
    tracer: Tracer,
    span: Span,
    *,
    model: str | None,
    provider: str | None,
    messages: Any = None,
    prompt: Any = None,
    tools: Any = None,
    answer: Any = None,
) -> Estimate | None:
    """Estimate and record the usage of the call on ``span``; None when estimation is off or
    the span already holds exact usage."""
    if not usage_options().estimate or has_exact_usage(span):
        return None
    text, calls = answer_of(answer)
    estimate = estimate_usage(
        model,
        messages=chat_messages(messages) if messages is not None else (),
        prompt=prompt if isinstance(prompt, str) else None,
        tools=tool_definitions(tools),
        output=text,
        output_tool_calls=calls,
    )
    span.attributes[attr.LLM_USAGE_ESTIMATED] = True
    span.attributes[attr.LLM_USAGE_ESTIMATE_METHOD] = estimate.method
    tracer.record_usage_from(span, estimate.usage, model=model, provider=provider)
    return estimate
