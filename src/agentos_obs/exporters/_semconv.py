"""Our span model in the vocabularies OpenTelemetry backends read.

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

Span names follow the GenAI conventions: ``chat gpt-4o``, ``embeddings text-embedding-3``,
``execute_tool search``, ``invoke_agent planner``; other spans keep their names (the
original name is kept in ``agentos.span.name``).

This module has no OpenTelemetry import: it produces plain dicts of attribute values
(str, bool, int, float or homogeneous lists of those).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

import agentos_obs.attributes as attr
from agentos_obs.tracing._spans import Span, SpanKind, SpanStatus, Trace

__all__ = [
    "AttributeValue",
    "genai_operation",
    "otel_attributes",
    "otel_span_name",
    "provider_names",
    "to_attribute_value",
]

AttributeValue = str | bool | int | float | list[str] | list[bool] | list[int] | list[float]

_INT64 = (-(2**63), 2**63 - 1)

_OPERATIONS = {
    SpanKind.LLM: "chat",
    SpanKind.EMBEDDING: "embeddings",
    SpanKind.TOOL: "execute_tool",
    SpanKind.AGENT: "invoke_agent",
    SpanKind.RETRIEVAL: "retrieval",
}
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


def genai_operation(span: Span) -> str | None:
    return _OPERATIONS.get(span.kind)


def _tool_name(span: Span) -> str:
    return str(span.attributes.get(attr.TOOL_NAME) or span.name)


def _agent_name(span: Span) -> str:
    return str(span.attributes.get(attr.AGENT_NAME) or span.name)


def _request_model(span: Span) -> str:
    requested = span.attributes.get(attr.LLM_REQUEST_MODEL)
    return str(requested) if requested else span.model_name


def otel_span_name(span: Span) -> str:
    """The span's name under the GenAI conventions ("chat gpt-4o", "execute_tool search")."""
    kind = span.kind
    if kind is SpanKind.LLM or kind is SpanKind.EMBEDDING:
        model = _request_model(span)
        operation = _OPERATIONS[kind]
        return f"{operation} {model}" if model else span.name or operation
    if kind is SpanKind.TOOL:
        return f"execute_tool {_tool_name(span)}"
    if kind is SpanKind.AGENT:
        return f"invoke_agent {_agent_name(span)}"
    return span.name or kind.value


def to_attribute_value(value: Any) -> AttributeValue | None:
    """A value OpenTelemetry accepts, or None to leave the attribute out.

    Scalars pass; homogeneous lists of scalars pass; anything else (dicts, mixed lists,
    objects) becomes JSON text, since backends display strings but drop unknown types.
    """
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return None
        for kind in (str, bool):
            if all(isinstance(v, kind) for v in items):
                return items
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            if all(_INT64[0] <= v <= _INT64[1] for v in items):
                return items
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
    return _json_text(value)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


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
    return content if isinstance(content, str) else _json_text(content)


def _put_messages(out: dict[str, Any], key: str, raw: Any, genai_key: str, fallback: str) -> None:
    messages = _messages(raw)
    if messages is None:
        # Not a message list (plain prompt, truncated JSON): keep it readable as a value.
        out.setdefault(fallback, raw if isinstance(raw, str) else _json_text(raw))
        return
    for i, message in enumerate(messages):
        out[f"{key}.{i}.message.role"] = message["role"]
        out[f"{key}.{i}.message.content"] = _content_text(message["content"])
    out[genai_key] = _json_text(
        [
            {"role": m["role"], "parts": [{"type": "text", "content": _content_text(m["content"])}]}
            for m in messages
        ]
    )


def _put_documents(out: dict[str, Any], raw: Any, scores: Any) -> None:
    documents = _parse_json(raw)
    if not isinstance(documents, list):
        if raw is not None:
            out.setdefault(attr.OUTPUT_VALUE, raw if isinstance(raw, str) else _json_text(raw))
        return
    score_list = scores if isinstance(scores, (list, tuple)) else []
    for i, document in enumerate(documents):
        prefix = f"retrieval.documents.{i}.document"
        if isinstance(document, dict):
            content = document.get("page_content", document.get("content", document.get("text")))
            out[f"{prefix}.content"] = _content_text(content)
            metadata = document.get("metadata")
            if metadata:
                out[f"{prefix}.metadata"] = _json_text(metadata)
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


def _put_usage(out: dict[str, Any], span: Span) -> None:
    model = span.model_name
    requested = _request_model(span)
    if requested:
        out["gen_ai.request.model"] = requested
        out["llm.request.model_name"] = requested
    if model:
        out["gen_ai.response.model"] = model
        out["llm.response.model_name"] = model
        out["llm.model_name"] = model
    elif requested:
        out["llm.model_name"] = requested
    names = provider_names(span.provider)
    if names is not None:
        genai, openinference, system = names
        out["gen_ai.provider.name"] = genai
        out["gen_ai.system"] = genai
        out["llm.provider"] = openinference
        if system is not None:
            out["llm.system"] = system
    if not span.has_usage:
        return
    out["gen_ai.usage.input_tokens"] = span.input_tokens
    out["gen_ai.usage.output_tokens"] = span.output_tokens
    out["llm.token_count.prompt"] = span.input_tokens
    out["llm.token_count.completion"] = span.output_tokens
    out["llm.token_count.total"] = span.input_tokens + span.output_tokens
    if span.cache_read_tokens:
        out["gen_ai.usage.cache_read.input_tokens"] = span.cache_read_tokens
        out["llm.token_count.prompt_details.cache_read"] = span.cache_read_tokens
    if span.cache_write_tokens:
        out["gen_ai.usage.cache_creation.input_tokens"] = span.cache_write_tokens
        out["llm.token_count.prompt_details.cache_write"] = span.cache_write_tokens
    if span.reasoning_tokens:
        out["gen_ai.usage.reasoning.output_tokens"] = span.reasoning_tokens
        out["llm.token_count.completion_details.reasoning"] = span.reasoning_tokens
    if span.cost_usd is not None and math.isfinite(span.cost_usd):
        out["llm.cost.total"] = span.cost_usd
        out["gen_ai.usage.cost"] = span.cost_usd
    if not span.counts_usage:
        # An outer span repeating its inner call's usage (LlamaIndex achat > chat): say so,
        # so a backend summing per span can skip it.
        out["agentos.usage.counted"] = False


def otel_attributes(span: Span, trace: Trace | None = None) -> dict[str, AttributeValue]:
    """All attributes of ``span`` for export: ours, GenAI and OpenInference."""
    out: dict[str, Any] = {}
    attributes = span.attributes
    for key, value in attributes.items():
        if key not in _CONSUMED:
            out[str(key)] = value
    kind = span.kind
    out["agentos.span.kind"] = kind.value
    out["agentos.span.status"] = span.status.value
    out["agentos.span.name"] = span.name
    out["openinference.span.kind"] = _OPENINFERENCE_KINDS.get(kind, "CHAIN")
    out["langfuse.observation.type"] = _LANGFUSE_TYPES.get(kind, "span")
    operation = _OPERATIONS.get(kind)
    if operation is not None:
        out["gen_ai.operation.name"] = operation
    if kind is SpanKind.TOOL:
        out["gen_ai.tool.name"] = _tool_name(span)
        out.setdefault(attr.TOOL_NAME, _tool_name(span))
        call_id = attributes.get(attr.TOOL_CALL_ID)
        if call_id is not None:
            out["gen_ai.tool.call.id"] = str(call_id)
            out["tool_call.id"] = str(call_id)
    agent_name = attributes.get(attr.AGENT_NAME)
    if kind is SpanKind.AGENT or agent_name:
        out["gen_ai.agent.name"] = str(agent_name or span.name)
    if kind in (SpanKind.LLM, SpanKind.EMBEDDING) or span.has_usage or span.model_name:
        _put_usage(out, span)
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
    _put_trace_context(out, span, trace)
    if span.status is SpanStatus.TIMEOUT:
        out.setdefault(attr.ERROR_TYPE, "timeout")
    converted: dict[str, AttributeValue] = {}
    for key, value in out.items():
        attribute = to_attribute_value(value)
        if attribute is not None:
            converted[key] = attribute
    return converted


def _put_trace_context(out: dict[str, Any], span: Span, trace: Trace | None) -> None:
    # Backends filter by user and session on every span (Phoenix, Langfuse): copy them
    # from the trace when the span does not carry them itself.
    user = span.attributes.get(attr.USER_ID)
    session = span.attributes.get(attr.SESSION_ID)
    if trace is not None:
        user = user if user is not None else trace.user_id
        session = session if session is not None else trace.session_id
        if span.parent is None:
            # A root span stands for the trace: it carries the trace's name and attributes
            # (a start_trace block has no span of its own).
            if trace.name:
                out["agentos.trace.name"] = trace.name
                out["langfuse.trace.name"] = trace.name
            for key, value in trace.attributes.items():
                out.setdefault(str(key), value)
    if user is not None:
        out[attr.USER_ID] = str(user)
    if session is not None:
        out[attr.SESSION_ID] = str(session)
        out["gen_ai.conversation.id"] = str(session)
