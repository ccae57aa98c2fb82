"""Sealed span records in the vocabularies OpenTelemetry backends read.

Each exported span carries, next to our own attributes:

* the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.*``,
  ``gen_ai.tool.name``, ``gen_ai.agent.name``…), read by Jaeger/Tempo users, Datadog,
  Langfuse and the OpenTelemetry GenAI dashboards; the deprecated ``gen_ai.system`` too,
  for backends that have not moved to ``gen_ai.provider.name`` yet;
* OpenInference (``openinference.span.kind``, ``llm.model_name``, ``llm.token_count.*``,
  ``llm.cost.total``, flattened ``llm.input_messages.N.message.*``…), read by Arize
  Phoenix and Langfuse;
* ``gen_ai.usage.cost`` and ``langfuse.observation.type``, which Langfuse maps to the cost
  and the type of an observation.

Everything is read from the :class:`~agentos_obs.tracing.SpanRecord`'s derived facts, never
re-derived: a counted model call (``record.llm_call``) is the one span exported as an
inference (``chat``, or ``embeddings`` for an EMBEDDING span; an explicit
``gen_ai.operation.name`` attribute such as ``text_completion`` wins), with the record's
usage, cost, cost status, model and provider. An LLM span wrapping a counted call below it
(LlamaIndex ``achat`` > ``chat``) is exported as a plain span, so a backend summing
inferences counts the call once. ``gen_ai.agent.name`` is the record's agent, user and
session are the record's.

Span names follow the GenAI conventions: ``chat gpt-4o``, ``embeddings text-embedding-3``,
``execute_tool search``, ``invoke_agent planner``; other spans keep their names (the
original name is kept in ``agentos.span.name``).

This module has no OpenTelemetry import: it produces plain dicts of attribute values
(str, bool, int, float or homogeneous lists of those). Values that are not already
attribute values become JSON text through the one serialiser
(:func:`agentos_obs._internal.jsonsafe.dumps`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs._internal.jsonsafe import INT64_MAX, INT64_MIN, dumps
from agentos_obs.tracing import SpanKind, SpanRecord, SpanStatus, TraceRecord

__all__ = [
    "CLIENT_OPERATIONS",
    "AttributeValue",
    "genai_operation",
    "otel_attributes",
    "otel_span_name",
    "provider_names",
    "to_attribute_value",
]

AttributeValue = str | bool | int | float | list[str] | list[bool] | list[int] | list[float]

# Operations of spans that are not model calls, by kind. A counted call's operation is
# decided by _call_operation; an LLM span that is not the call has none.
_OPERATIONS = {
    SpanKind.EMBEDDING: "embeddings",  # an embedding request that reported no usage
    SpanKind.TOOL: "execute_tool",
    SpanKind.AGENT: "invoke_agent",
    SpanKind.RETRIEVAL: "retrieval",
}
# Operations that are requests to a model service: exported as CLIENT spans.
CLIENT_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_OPENINFERENCE_KINDS = {
    SpanKind.LLM: "LLM",
    SpanKind.EMBEDDING: "EMBEDDING",
    SpanKind.TOOL: "TOOL",
    SpanKind.AGENT: "AGENT",
    SpanKind.RETRIEVAL: "RETRIEVER",
    SpanKind.CHAIN: "CHAIN",
    SpanKind.MEMORY: "CHAIN",  # OpenInference has no memory kind
}
_LANGFUSE_TYPES = {
    SpanKind.LLM: "generation",
    SpanKind.EMBEDDING: "embedding",
    SpanKind.TOOL: "tool",
    SpanKind.AGENT: "agent",
    SpanKind.RETRIEVAL: "retriever",
    SpanKind.CHAIN: "chain",
    SpanKind.MEMORY: "span",
}

# Provider spellings seen in LangChain (ls_provider), LlamaIndex and users' code ->
# (gen_ai.provider.name, OpenInference llm.provider, OpenInference llm.system or None).
_PROVIDERS: dict[str, tuple[str, str, str | None]] = {
    "openai": ("openai", "openai", "openai"),
    "azure": ("azure.ai.openai", "azure", "openai"),
    "azure_openai": ("azure.ai.openai", "azure", "openai"),
    "azure.ai.openai": ("azure.ai.openai", "azure", "openai"),
    "azure_ai": ("azure.ai.inference", "azure", None),
    "anthropic": ("anthropic", "anthropic", "anthropic"),
    "bedrock": ("aws.bedrock", "aws", None),
    "amazon_bedrock": ("aws.bedrock", "aws", None),
    "aws": ("aws.bedrock", "aws", None),
    "aws.bedrock": ("aws.bedrock", "aws", None),
    "google": ("gcp.gemini", "google", "vertexai"),
    "google_genai": ("gcp.gemini", "google", "vertexai"),
    "gemini": ("gcp.gemini", "google", "vertexai"),
    "gcp.gemini": ("gcp.gemini", "google", "vertexai"),
    "google_vertexai": ("gcp.vertex_ai", "google", "vertexai"),
    "vertexai": ("gcp.vertex_ai", "google", "vertexai"),
    "vertex_ai": ("gcp.vertex_ai", "google", "vertexai"),
    "gcp.vertex_ai": ("gcp.vertex_ai", "google", "vertexai"),
    "mistral": ("mistral_ai", "mistralai", "mistralai"),
    "mistralai": ("mistral_ai", "mistralai", "mistralai"),
    "mistral_ai": ("mistral_ai", "mistralai", "mistralai"),
    "cohere": ("cohere", "cohere", "cohere"),
    "groq": ("groq", "groq", None),
    "deepseek": ("deepseek", "deepseek", None),
    "xai": ("x_ai", "xai", None),
    "x_ai": ("x_ai", "xai", None),
    "perplexity": ("perplexity", "perplexity", None),
    "ibm": ("ibm.watsonx.ai", "ibm", None),
    "watsonx": ("ibm.watsonx.ai", "ibm", None),
    "ibm.watsonx.ai": ("ibm.watsonx.ai", "ibm", None),
}

# OpenInference/GenAI message roles from LangChain's message types.
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}

# Invocation parameters -> gen_ai.request.* (names as LangChain and the SDKs spell them).
_REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}

# Our keys that the conventions replace with structured forms.
_CONSUMED = frozenset({attr.LLM_INPUT_MESSAGES, attr.LLM_OUTPUT_MESSAGES, attr.RETRIEVAL_DOCUMENTS})


def provider_names(provider: str | None) -> tuple[str, str, str | None] | None:
    """(gen_ai.provider.name, llm.provider, llm.system) for a provider spelling."""
    if not provider:
        return None
    key = provider.strip().lower()
    known = _PROVIDERS.get(key)
    if known is not None:
        return known
    return (key, key, None)


def _call_operation(record: SpanRecord) -> str:
    if record.kind is SpanKind.EMBEDDING:
        return "embeddings"
    given = record.attributes.get("gen_ai.operation.name")
    if isinstance(given, str) and given in CLIENT_OPERATIONS:
        return given  # an integration or the app knows better (text_completion...)
    return "chat"


def genai_operation(record: SpanRecord) -> str | None:
    """``gen_ai.operation.name`` of the record: an inference for a counted call, else by
    kind (None for spans the conventions have no operation for)."""
    if record.llm_call:
        return _call_operation(record)
    return _OPERATIONS.get(record.kind)


def _tool_name(record: SpanRecord) -> str:
    return str(record.attributes.get(attr.TOOL_NAME) or record.name)


def _request_model(record: SpanRecord) -> str:
    requested = record.attributes.get(attr.LLM_REQUEST_MODEL)
    return str(requested) if requested else (record.model or "")


def otel_span_name(record: SpanRecord, operation: str | None = None) -> str:
    """The span's name under the GenAI conventions ("chat gpt-4o", "execute_tool search")."""
    if operation is None:
        operation = genai_operation(record)
    if operation in CLIENT_OPERATIONS:
        model = _request_model(record)
        return f"{operation} {model}" if model else record.name or str(operation)
    if operation == "execute_tool":
        return f"execute_tool {_tool_name(record)}"
    if operation == "invoke_agent":
        return f"invoke_agent {record.agent or record.name}"
    return record.name or record.kind.value


def to_attribute_value(value: Any) -> AttributeValue | None:
    """A value OpenTelemetry accepts, or None to leave the attribute out.

    Scalars pass; homogeneous lists of scalars pass; anything else (dicts, mixed lists,
    objects, integers beyond int64) becomes JSON text through the one serialiser, since
    backends display strings but drop unknown types.
    """
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return None
        for kind in (str, bool):
            if all(isinstance(v, kind) for v in items):
                return items
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            if all(INT64_MIN <= v <= INT64_MAX for v in items):
                return items
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
    return dumps(value)


def _parse_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None  # truncated or plain text


def _messages(value: Any) -> list[dict[str, Any]] | None:
    parsed = _parse_json(value)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not parsed:
        return None
    messages = []
    for item in parsed:
        if isinstance(item, str):
            messages.append({"role": "user", "content": item})
        elif isinstance(item, dict) and "content" in item:
            role = str(item.get("role") or item.get("type") or "user")
            messages.append({"role": _ROLES.get(role, role), "content": item["content"]})
        else:
            return None
    return messages


def _content_text(content: Any) -> str:
    return content if isinstance(content, str) else dumps(content)


def _put_messages(out: dict[str, Any], key: str, raw: Any, genai_key: str, fallback: str) -> None:
    messages = _messages(raw)
    if messages is None:
        # Not a message list (plain prompt, truncated JSON): keep it readable as a value.
        out.setdefault(fallback, raw if isinstance(raw, str) else dumps(raw))
        return
    for i, message in enumerate(messages):
        out[f"{key}.{i}.message.role"] = message["role"]
        out[f"{key}.{i}.message.content"] = _content_text(message["content"])
    out[genai_key] = dumps(
        [
            {"role": m["role"], "parts": [{"type": "text", "content": _content_text(m["content"])}]}
            for m in messages
        ]
    )


def _put_documents(out: dict[str, Any], raw: Any, scores: Any) -> None:
    documents = _parse_json(raw)
    if not isinstance(documents, list):
        if raw is not None:
            out.setdefault(attr.OUTPUT_VALUE, raw if isinstance(raw, str) else dumps(raw))
        return
    score_list = scores if isinstance(scores, (list, tuple)) else []
    for i, document in enumerate(documents):
        prefix = f"retrieval.documents.{i}.document"
        if isinstance(document, dict):
            content = document.get("page_content", document.get("content", document.get("text")))
            out[f"{prefix}.content"] = _content_text(content)
            metadata = document.get("metadata")
            if metadata:
                out[f"{prefix}.metadata"] = dumps(metadata)
            if document.get("id") is not None:
                out[f"{prefix}.id"] = str(document["id"])
        else:
            out[f"{prefix}.content"] = _content_text(document)
        if i < len(score_list) and isinstance(score_list[i], (int, float)):
            out[f"{prefix}.score"] = float(score_list[i])


def _put_request_params(out: dict[str, Any], raw: Any) -> None:
    params = _parse_json(raw)
    if not isinstance(params, Mapping):
        return
    for name, key in _REQUEST_PARAMS.items():
        value = params.get(name)
        if value is None or key in out:
            continue
        if key == "gen_ai.request.stop_sequences":
            stops = to_attribute_value([value] if isinstance(value, str) else value)
            if isinstance(stops, list):
                out[key] = stops
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value


def _put_call(out: dict[str, Any], record: SpanRecord) -> None:
    """Model, provider, usage, cost and cost status of a counted call, from the record."""
    model = record.model
    requested = _request_model(record)
    if requested:
        out["gen_ai.request.model"] = requested
        out["llm.request.model_name"] = requested
    if model:
        # What answered, else what was asked for (the seal's rule for ``model``).
        out["gen_ai.response.model"] = model
        out["llm.response.model_name"] = model
        out["llm.model_name"] = model
    names = provider_names(record.provider)
    if names is not None:
        genai, openinference, system = names
        out["gen_ai.provider.name"] = genai
        out["gen_ai.system"] = genai
        out["llm.provider"] = openinference
        if system is not None:
            out["llm.system"] = system
    if record.cost_status is not None:
        out["agentos.cost_status"] = record.cost_status.value
    if not record.counts_usage:
        return  # a failed call, or a provider that reported nothing: no counts, no $0
    usage = record.usage
    out["gen_ai.usage.input_tokens"] = usage.input_tokens
    out["gen_ai.usage.output_tokens"] = usage.output_tokens
    out["llm.token_count.prompt"] = usage.input_tokens
    out["llm.token_count.completion"] = usage.output_tokens
    out["llm.token_count.total"] = usage.total_tokens
    if usage.cache_read_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
        out["llm.token_count.prompt_details.cache_read"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        out["llm.token_count.prompt_details.cache_write"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
        out["llm.token_count.completion_details.reasoning"] = usage.reasoning_tokens
    if record.cost_usd is not None:  # finite and >= 0: the seal repaired anything else
        out["llm.cost.total"] = record.cost_usd
        out["gen_ai.usage.cost"] = record.cost_usd


def otel_attributes(
    record: SpanRecord, trace: TraceRecord | None = None, operation: str | None = None
) -> dict[str, AttributeValue]:
    """All attributes of ``record`` for export: ours, GenAI and OpenInference."""
    if operation is None:
        operation = genai_operation(record)
    out: dict[str, Any] = {}
    attributes = record.attributes
    for key, value in attributes.items():
        if key not in _CONSUMED:
            out[key] = value
    kind = record.kind
    call = record.llm_call
    out["agentos.span.kind"] = kind.value
    out["agentos.span.status"] = record.status.value
    out["agentos.span.name"] = record.name
    if call:
        out["agentos.llm_call"] = True
        out["openinference.span.kind"] = "EMBEDDING" if operation == "embeddings" else "LLM"
        out["langfuse.observation.type"] = (
            "embedding" if operation == "embeddings" else "generation"
        )
    elif kind is SpanKind.LLM:
        # Wraps the counted call below it: a plain span, so the call is counted once.
        out["agentos.llm_call"] = False
        out["openinference.span.kind"] = "CHAIN"
        out["langfuse.observation.type"] = "span"
    else:
        out["openinference.span.kind"] = _OPENINFERENCE_KINDS.get(kind, "CHAIN")
        out["langfuse.observation.type"] = _LANGFUSE_TYPES.get(kind, "span")
    if operation is not None:
        out["gen_ai.operation.name"] = operation
    if operation == "execute_tool":
        out["gen_ai.tool.name"] = _tool_name(record)
        out.setdefault(attr.TOOL_NAME, _tool_name(record))
        call_id = attributes.get(attr.TOOL_CALL_ID)
        if call_id is not None:
            out["gen_ai.tool.call.id"] = str(call_id)
            out["tool_call.id"] = str(call_id)
    if record.agent:
        out["gen_ai.agent.name"] = record.agent
    if call:
        _put_call(out, record)
    if attr.LLM_INVOCATION_PARAMS in attributes:
        _put_request_params(out, attributes[attr.LLM_INVOCATION_PARAMS])
    finish = attributes.get(attr.LLM_FINISH_REASON)
    if finish is not None:
        out["gen_ai.response.finish_reasons"] = [str(finish)]
    if attributes.get(attr.LLM_STREAMING) is not None:
        out["gen_ai.request.stream"] = bool(attributes[attr.LLM_STREAMING])
    if attr.LLM_INPUT_MESSAGES in attributes:
        _put_messages(
            out, "llm.input_messages", attributes[attr.LLM_INPUT_MESSAGES],
            "gen_ai.input.messages", attr.INPUT_VALUE,
        )  # fmt: skip
    if attr.LLM_OUTPUT_MESSAGES in attributes:
        _put_messages(
            out, "llm.output_messages", attributes[attr.LLM_OUTPUT_MESSAGES],
            "gen_ai.output.messages", attr.OUTPUT_VALUE,
        )  # fmt: skip
    if attr.RETRIEVAL_DOCUMENTS in attributes:
        _put_documents(
            out, attributes[attr.RETRIEVAL_DOCUMENTS], attributes.get(attr.RETRIEVAL_TOP_SCORES)
        )
    query = attributes.get(attr.RETRIEVAL_QUERY)
    if query is not None:
        out["gen_ai.retrieval.query.text"] = str(query)
        out.setdefault(attr.INPUT_VALUE, str(query))
    tags = attributes.get(attr.TAGS)
    if isinstance(tags, (list, tuple)) and tags:
        out["tag.tags"] = [str(t) for t in tags]
    _put_trace_context(out, record, trace)
    if record.status is SpanStatus.TIMEOUT:
        out.setdefault(attr.ERROR_TYPE, "timeout")
    converted: dict[str, AttributeValue] = {}
    for key, value in out.items():
        attribute = to_attribute_value(value)
        if attribute is not None:
            converted[key] = attribute
    return converted


def _put_trace_context(out: dict[str, Any], record: SpanRecord, trace: TraceRecord | None) -> None:
    # Backends filter by user and session on every span (Phoenix, Langfuse): the record's
    # (its own, else the trace's or the nearest ancestor's, as the seal decided).
    user, session = record.user_id, record.session_id
    if trace is not None:
        if user is None:
            user = trace.user_id
        if session is None:
            session = trace.session_id
        if trace.root_span is record:
            # A root span stands for the trace: it carries the trace's name and attributes
            # (a start_trace block has no span of its own).
            if trace.name:
                out["agentos.trace.name"] = trace.name
                out["langfuse.trace.name"] = trace.name
            for key, value in trace.attributes.items():
                out.setdefault(key, value)
    if user is not None:
        out[attr.USER_ID] = user
    if session is not None:
        out[attr.SESSION_ID] = session
        out["gen_ai.conversation.id"] = session
