"""The seal: one step, when a span ends, from the live span to its :class:`SpanRecord`, and
from a finished trace to its :class:`TraceRecord`. Every derived fact has one rule here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import agentos_obs.attributes as attr
from agentos_obs._internal.guard import count_drop
from agentos_obs.pricing._usage import Usage
from agentos_obs.tracing._kinds import CostStatus, SpanKind
from agentos_obs.tracing._records import EventRecord, SpanRecord, TraceRecord, fill_span_record
from agentos_obs.tracing._sanitize import EMPTY, clean_text, sanitize_attributes

if TYPE_CHECKING:
    from agentos_obs.tracing._spans import Span, SpanEvent, Trace

__all__ = ["MAX_TOKENS", "agent_of", "model_of", "seal", "seal_trace", "session_of", "user_of"]

# A single call with more tokens than this is not a real count (2**40 ≈ 1.1 trillion): it
# is repaired to 0 rather than overflow every sum downstream (SQLite, JSON in browsers).
MAX_TOKENS = 2**40
_NO_USAGE = Usage()
_new_record = object.__new__


def _token_count(value: Any, field: str, repaired: list[str]) -> int:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value  # type: ignore[no-any-return]
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):
        number = -1
    if 0 <= number <= MAX_TOKENS:
        return number
    repaired.append(field)
    return 0


def _cost(value: Any, repaired: list[str]) -> float | None:
    if value is None:
        return None
    try:
        cost = float(value)
    except (TypeError, ValueError, OverflowError):
        cost = math.nan
    if 0.0 <= cost < math.inf:
        return cost
    repaired.append("cost_usd")
    return None


# -- attribution: one rule each, for live spans ------------------------------------------
def model_of(span: Span) -> str | None:
    """The model that answered (``model_name``), else the one asked for."""
    if span.model_name:
        return span.model_name
    requested = span.attributes.get(attr.LLM_REQUEST_MODEL)
    return None if requested is None else str(requested)


def _nearest(span: Span, key: str, trace_value: str | None) -> str | None:
    return trace_value if trace_value is not None else span.inherited(key)


def user_of(span: Span) -> str | None:
    """The user a span works for: its trace's ``user.id``, else the nearest ancestor's."""
    trace = span.trace
    return _nearest(span, attr.USER_ID, trace.user_id if trace is not None else None)


def session_of(span: Span) -> str | None:
    trace = span.trace
    return _nearest(span, attr.SESSION_ID, trace.session_id if trace is not None else None)


def agent_of(span: Span) -> str | None:
    """``agent.name`` of the span, else of the enclosing AGENT span, else that span's name."""
    own = span.attributes.get(attr.AGENT_NAME)
    if own:
        return str(own)
    agent = span.ancestor(SpanKind.AGENT)
    if agent is None:
        return None
    name = agent.attributes.get(attr.AGENT_NAME)
    return str(name) if name else (agent.name or None)


# -- the seal -----------------------------------------------------------------------------
def seal(span: Span, duration_ms: float, end_time: int) -> SpanRecord:
    """The record of ``span``, which has just ended (called once, by the tracer)."""
    repaired: list[str] = []
    usage = _NO_USAGE
    cost = span.cost_usd
    if cost is not None:
        cost = _cost(cost, repaired)
    carries_usage = span.usage_recorded or bool(
        span.input_tokens or span.output_tokens or cost is not None
    )
    if carries_usage:
        usage = Usage(
            _token_count(span.input_tokens, "input_tokens", repaired),
            _token_count(span.output_tokens, "output_tokens", repaired),
            _token_count(span.cache_read_tokens, "cache_read_tokens", repaired),
            _token_count(span.cache_write_tokens, "cache_write_tokens", repaired),
            _token_count(span.reasoning_tokens, "reasoning_tokens", repaired),
        )
    # Innermost wins: a span is not the call when a descendant carries usage (known when the
    # usage is recorded) or was sealed as a call (known when it ended).
    llm_call = not (span.call_below or span.usage_below) and (
        carries_usage or (span.kind is SpanKind.LLM and not _not_a_call(span.attributes))
    )
    cost_status: CostStatus | None = None
    model = provider = None
    if llm_call:
        if not carries_usage:
            cost_status = CostStatus.NO_USAGE
        elif span.attributes.get(attr.LLM_USAGE_ESTIMATED):
            cost_status = CostStatus.ESTIMATED if cost is not None else CostStatus.UNPRICED
        else:
            cost_status = CostStatus.PRICED if cost is not None else CostStatus.UNPRICED
        model = model_of(span)
        provider = span.provider or None
        span.mark_call()
    elif span.model_name:
        model = span.model_name
        provider = span.provider or None
    attributes: Mapping[str, Any] = span.attributes
    if repaired:
        count_drop("seal.repaired", reason=f"implausible {', '.join(repaired)} repaired")
        attributes = {**attributes, "agentos.repaired": repaired}
    events = tuple(_event_record(e) for e in span.events) if span.events else ()
    return fill_span_record(
        _new_record(SpanRecord),
        span.span_id,
        span.trace_id,
        span.parent_id,
        clean_text(span.name),
        span.kind,
        span.status,
        span.start_time,
        end_time,
        duration_ms if duration_ms > 0.0 else 0.0,
        sanitize_attributes(attributes) if attributes else EMPTY,
        events,
        llm_call,
        usage,
        cost if carries_usage else None,
        cost_status,
        None if model is None else clean_text(model),
        None if provider is None else clean_text(provider),
        *_people(span),
        _optional_text(agent_of(span)),
    )


def _people(span: Span) -> tuple[str | None, str | None]:
    """(user, session) of a span: the trace's, else the nearest ancestor's (one rule with
    :func:`user_of` and :func:`session_of`, in one pass for the seal)."""
    trace = span.trace
    user = session = None
    if trace is not None:  # the trace's own attributes, then its root span's
        values = trace.attributes
        user, session = values.get(attr.USER_ID), values.get(attr.SESSION_ID)
        root = trace.root_span
        if root is not None and (user is None or session is None):
            values = root.attributes
            if user is None:
                user = values.get(attr.USER_ID)
            if session is None:
                session = values.get(attr.SESSION_ID)
    if user is None:
        user = span.inherited(attr.USER_ID)
    if session is None:
        session = span.inherited(attr.SESSION_ID)
    return (
        None if user is None else clean_text(str(user)),
        None if session is None else clean_text(str(session)),
    )


def _optional_text(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def _event_record(event: SpanEvent) -> EventRecord:
    return EventRecord(event.name, event.timestamp, event.attributes)


def seal_trace(trace: Trace, records: list[SpanRecord], service_name: str | None) -> TraceRecord:
    """The record of ``trace``, whose spans have all ended (called once, by the tracer).

    Status, user and session come from the records (the root's user and session are the
    trace's, by the seal's rule), not from the live trace again.
    """
    root = trace.root_span
    root_record = root.record if root is not None else None
    user_id = session_id = None
    if root_record is None:  # a start_trace block without spans: its attributes say
        user_id = _optional_text(trace.user_id)
        session_id = _optional_text(trace.session_id)
    return TraceRecord(
        trace_id=trace.trace_id,
        spans=tuple(records),
        name=trace.name,
        service_name=service_name,
        attributes=trace.attributes,
        root_span_id=root_record.span_id if root_record is not None else None,
        start_time=trace.start_time,
        end_time=trace.end_time,
        user_id=user_id,
        session_id=session_id,
        remote_parent_id=trace.remote_parent_id,
    )


def _not_a_call(attributes: Mapping[str, Any]) -> bool:
    """An LLM span that sent nothing of its own: a wrapper of a call counted elsewhere, or a
    call a budget refused before it was sent."""
    return bool(attributes.get(attr.LLM_WRAPPER)) or (
        attributes.get(attr.ERROR_TYPE) == "BudgetExceeded"
    )
