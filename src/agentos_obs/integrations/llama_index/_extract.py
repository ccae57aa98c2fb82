"""Pure readers for the LlamaIndex integration: span names, span kinds, models, usage,
retrieval details and captured content. No state, no tracer; every reader tolerates odd
input (a missing attribute, a property that raises, a wrong type) by returning None.

LlamaIndex classes are imported lazily, once, and each import may fail on its own (classes
move between versions): a missing class simply never matches.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from typing import Any

from agentos_obs.pricing._usage import Usage, extract_usage
from agentos_obs.pricing._usage import read_field as _get
from agentos_obs.tracing._spans import SpanKind

__all__ = [
    "STREAM_GENERATOR",
    "STREAM_NONE",
    "STREAM_RESPONSE",
    "STREAM_WITH_CHILDREN",
    "classify",
    "finish_reason",
    "has_delta",
    "input_text",
    "is_response",
    "method_of",
    "model_from_payload",
    "output_text",
    "provider_of",
    "readable_name",
    "request_model",
    "response_model",
    "retrieval_summary",
    "stream_kind",
    "tool_name",
    "usage_of",
]

_UUID_LEN = 36
_CACHE_LIMIT = 4096  # classes seen; bounded so a process that makes classes at run time is safe


def readable_name(span_id: str) -> str:
    """``RetrieverQueryEngine.query-<uuid4>`` -> ``RetrieverQueryEngine.query``.

    The uuid4 suffix has dashes of its own, so it is cut by its fixed shape (8-4-4-4-12);
    an id of another shape falls back to the part before the first dash.
    """
    if (
        len(span_id) > _UUID_LEN + 1
        and span_id[-37] == "-"
        and span_id[-28] == "-"
        and span_id[-23] == "-"
        and span_id[-18] == "-"
        and span_id[-13] == "-"
    ):
        return span_id[: -(_UUID_LEN + 1)]
    head = span_id.partition("-")[0]
    return head or span_id


def method_of(name: str) -> str:
    return name.rpartition(".")[2]


# -- kinds ---------------------------------------------------------------------------------

_bases: dict[str, tuple[type, ...]] | None = None
_kind_cache: dict[tuple[type, str], SpanKind] = {}


def _import(module: str, name: str) -> type | None:
    try:
        mod = __import__(module, fromlist=[name])
        found = getattr(mod, name, None)
    except Exception:  # a class moved or its module fails to import: it never matches
        return None
    return found if isinstance(found, type) else None


def _group(*pairs: tuple[str, str]) -> tuple[type, ...]:
    return tuple(cls for cls in (_import(m, n) for m, n in pairs) if cls is not None)


def _load_bases() -> dict[str, tuple[type, ...]]:
    global _bases
    if _bases is None:
        _bases = {
            "llm": _group(
                ("llama_index.core.base.llms.base", "BaseLLM"),
                ("llama_index.core.multi_modal_llms.base", "MultiModalLLM"),
            ),
            "embedding": _group(
                ("llama_index.core.base.embeddings.base", "BaseEmbedding"),
                ("llama_index.core.base.embeddings.base_sparse", "BaseSparseEmbedding"),
            ),
            "retriever": _group(
                ("llama_index.core.base.base_retriever", "BaseRetriever"),
                ("llama_index.core.image_retriever", "BaseImageRetriever"),
            ),
            "tool": _group(("llama_index.core.tools.types", "BaseTool")),
            "agent": _group(("llama_index.core.agent.workflow.base_agent", "BaseWorkflowAgent")),
            "workflow": _group(
                ("workflows", "Workflow"), ("llama_index.core.workflow", "Workflow")
            ),
            "memory": _group(
                ("llama_index.core.memory.types", "BaseMemory"),
                ("llama_index.core.memory.memory", "BaseMemoryBlock"),
            ),
        }
    return _bases


def _classify_type(cls: type, method: str) -> SpanKind:
    bases = _load_bases()
    if issubclass(cls, bases["llm"]):
        # Helpers on an LLM (`_prepare_chat_with_tools`, `_get_messages`) are not calls.
        return SpanKind.CHAIN if method.startswith("_") else SpanKind.LLM
    if issubclass(cls, bases["embedding"]):
        return SpanKind.EMBEDDING
    if issubclass(cls, bases["retriever"]):
        return SpanKind.RETRIEVAL
    if issubclass(cls, bases["tool"]):
        return SpanKind.TOOL
    if issubclass(cls, bases["agent"]) or issubclass(cls, bases["workflow"]):
        # The run is the agent; other methods of the workflow object are plumbing.
        return SpanKind.AGENT if method == "run" else SpanKind.CHAIN
    if issubclass(cls, bases["memory"]):
        return SpanKind.MEMORY
    return SpanKind.CHAIN


def classify(instance: object, name: str) -> SpanKind:
    """The span kind of a LlamaIndex span from the object whose method it wraps."""
    if instance is None:
        return SpanKind.CHAIN  # free functions and workflow steps
    cls = type(instance)
    method = method_of(name)
    key = (cls, method)
    kind = _kind_cache.get(key)
    if kind is None:
        kind = _classify_type(cls, method)
        if len(_kind_cache) >= _CACHE_LIMIT:
            _kind_cache.clear()
        _kind_cache[key] = kind
    return kind


def tool_name(instance: object) -> str | None:
    try:
        name = getattr(getattr(instance, "metadata", None), "name", None)
    except Exception:
        return None
    return name if isinstance(name, str) and name else None


# -- models and providers ------------------------------------------------------------------

_provider_cache: dict[type, str | None] = {}
# Class-name words for LLM classes that do not live in a `llama_index.llms.<provider>` module
# (custom subclasses); spellings are mapped to catalogue ids by the pricing module.
# A CamelCase word: "Open", "AI", "LLM", "Llama", "4o"… (acronyms stay one word before a
# capitalised word: "LLMPredictor" -> "LLM", "Predictor").
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_PROVIDER_WORDS = (
    ("azure", "azure"),
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("bedrock", "bedrock"),
    ("vertex", "vertexai"),
    ("gemini", "google"),
    ("groq", "groq"),
    ("mistral", "mistral"),
    ("ollama", "ollama"),
    ("cohere", "cohere"),
)


def _word_bounds(class_name: str) -> tuple[set[int], set[int]]:
    """Where CamelCase words start and end: ``DemoLlamaLLM`` -> Demo|Llama|LLM."""
    starts = {m.start() for m in _CAMEL_WORD.finditer(class_name)}
    ends = {m.end() for m in _CAMEL_WORD.finditer(class_name)}
    return starts, ends


def _provider_from_class_name(class_name: str) -> str | None:
    """A provider word that spans whole CamelCase words (``AzureOpenAI``, ``MyGroqLLM``), so
    ``DemoLlamaLLM`` is not read as "ollama" nor ``Fromistral`` as "mistral"."""
    lowered = class_name.lower()
    starts, ends = _word_bounds(class_name)
    for word, name in _PROVIDER_WORDS:
        at = lowered.find(word)
        while at != -1:
            if at in starts and at + len(word) in ends:
                return name
            at = lowered.find(word, at + 1)
    return None


def provider_of(instance: object) -> str | None:
    """Provider of an LLM from its integration package (``llama_index.llms.openai`` -> openai),
    else from a provider word in its class name; None when neither tells."""
    cls = type(instance)
    if cls in _provider_cache:
        return _provider_cache[cls]
    provider: str | None = None
    parts = (getattr(cls, "__module__", "") or "").split(".")
    if len(parts) >= 3 and parts[0] == "llama_index" and parts[1] in ("llms", "embeddings"):
        provider = parts[2]
    else:
        provider = _provider_from_class_name(cls.__name__)
    if len(_provider_cache) >= _CACHE_LIMIT:
        _provider_cache.clear()
    _provider_cache[cls] = provider
    return provider


def _model_text(value: Any) -> str | None:
    if isinstance(value, str) and value and value != "unknown":
        return value
    return None


def request_model(instance: object) -> str | None:
    """The model an LLM or embedding object is configured for (a plain field, no property)."""
    try:
        fields = getattr(instance, "__dict__", None)
        if not isinstance(fields, dict):
            return None
        for key in ("model", "model_name", "model_id", "deployment_name"):
            found = _model_text(fields.get(key))
            if found is not None:
                return found
    except Exception:
        return None
    return None


def model_from_payload(payload: Any) -> str | None:
    """``model_name`` from an event's ``model_dict`` (LlamaIndex's ``to_payload()``)."""
    if isinstance(payload, Mapping):
        return _model_text(payload.get("model_name")) or _model_text(payload.get("model"))
    return None


def response_model(response: Any) -> str | None:
    """The model that answered, from the provider's raw response (``raw["model"]``)."""
    raw = _get(response, "raw")
    for key in ("model", "model_version", "modelVersion", "model_name"):
        found = _model_text(_get(raw, key))
        if found is not None:
            return found
    return None


def finish_reason(response: Any) -> str | None:
    raw = _get(response, "raw")
    for key in ("stop_reason", "finish_reason", "done_reason"):
        value = _get(raw, key)
        if isinstance(value, str) and value:
            return value
    choices = _get(raw, "choices")
    if isinstance(choices, (list, tuple)) and choices:
        value = _get(choices[0], "finish_reason")
        if isinstance(value, str) and value:
            return value
    return None


def is_response(value: Any) -> bool:
    """A ChatResponse / CompletionResponse (or its shape): what an answer is read from."""
    return _get(value, "message") is not None or isinstance(_get(value, "text"), str)


def has_delta(response: Any) -> bool:
    """True for a streamed response that brings content or a tool call (the role chunk that
    opens an OpenAI stream brings neither)."""
    delta = _get(response, "delta")
    if isinstance(delta, str) and delta:
        return True
    message = _get(response, "message")
    extra = _get(message, "additional_kwargs")
    if _get(extra, "tool_calls"):
        return True
    blocks = _get(message, "blocks")
    if isinstance(blocks, list):
        return any(type(b).__name__ == "ToolCallBlock" for b in blocks)
    return False


def usage_of(response: Any, provider: str | None) -> Usage | None:
    """Usage from ``response.raw`` (dict or SDK object) or ``additional_kwargs``."""
    if response is None:
        return None
    usage = extract_usage(response, provider)
    if usage is None:
        message = _get(response, "message")
        usage = extract_usage(_get(message, "additional_kwargs"), provider)
    if usage is None or usage.is_empty:
        return None
    return usage


# -- retrieval -----------------------------------------------------------------------------

_TOP_SCORES = 5


def retrieval_summary(nodes: Any) -> tuple[int, list[float]]:
    """(number of nodes, best scores first, at most five, rounded)."""
    if not isinstance(nodes, (list, tuple)):
        return 0, []
    scores: list[float] = []
    for node in nodes:
        score = _get(node, "score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            value = float(score)
            if math.isfinite(value):
                scores.append(value)
    scores.sort(reverse=True)
    return len(nodes), [round(s, 6) for s in scores[:_TOP_SCORES]]


def documents(nodes: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Retrieved documents for content capture: id, score and text (truncated later)."""
    out: list[dict[str, Any]] = []
    if not isinstance(nodes, (list, tuple)):
        return out
    for node in nodes[:limit]:
        inner = _get(node, "node")
        text: Any = None
        try:
            getter = getattr(inner, "get_content", None)
            text = getter() if callable(getter) else _get(inner, "text")
        except Exception:
            text = None
        out.append(
            {
                "id": _get(inner, "node_id") or _get(inner, "id_"),
                "score": _get(node, "score"),
                "content": text if isinstance(text, str) else None,
            }
        )
    return out


# -- captured content ----------------------------------------------------------------------

# Argument names that carry the user's input, most telling first.
_INPUT_ARGS = (
    "str_or_query_bundle",
    "query_bundle",
    "query",
    "query_str",
    "message",
    "user_msg",
    "input",
    "prompt",
    "messages",
)


def plain(value: Any) -> Any:
    """A LlamaIndex value reduced to what a person reads (query text, message content)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    query_str = _get(value, "query_str")
    if isinstance(query_str, str):
        return query_str
    return value


def input_text(arguments: Any) -> Any:
    """The input worth recording from a call's bound arguments (None when nothing fits)."""
    if not isinstance(arguments, Mapping):
        return None
    for key in _INPUT_ARGS:
        if key in arguments and arguments[key] is not None:
            return plain(arguments[key])
    rest = {k: v for k, v in arguments.items() if k != "self"}
    kwargs = rest.pop("kwargs", None)
    if isinstance(kwargs, Mapping):
        rest.update(kwargs)
    args = rest.get("args")
    if isinstance(args, tuple) and not args:
        rest.pop("args")
    return rest or None


def output_text(result: Any) -> Any:
    """Readable output of a call, never consuming a stream (None when nothing fits)."""
    if result is None or isinstance(result, (str, int, float, bool)):
        return result
    if isinstance(result, (types.GeneratorType, types.AsyncGeneratorType)):
        return None
    for key in ("response", "content", "result", "text"):
        value = _get(result, key)
        if isinstance(value, str):
            return value
    message = _get(result, "message")
    if message is not None:
        content = _get(message, "content")
        if isinstance(content, str):
            return content
    return None


# -- streams -------------------------------------------------------------------------------

STREAM_NONE = 0
STREAM_GENERATOR = 1  # a generator / async generator (LLM streams, lazy synthesizers)
STREAM_RESPONSE = 2  # StreamingResponse / AsyncStreamingResponse: `response_gen` is wrapped
STREAM_WITH_CHILDREN = 3  # StreamingAgentChatResponse: consumed by a child (thread or task)

_stream_types: dict[type, int] | None = None


def _load_stream_types() -> dict[type, int]:
    global _stream_types
    if _stream_types is None:
        found: dict[type, int] = {
            types.GeneratorType: STREAM_GENERATOR,
            types.AsyncGeneratorType: STREAM_GENERATOR,
        }
        for module, name, kind in (
            ("llama_index.core.base.response.schema", "StreamingResponse", STREAM_RESPONSE),
            ("llama_index.core.base.response.schema", "AsyncStreamingResponse", STREAM_RESPONSE),
            (
                "llama_index.core.chat_engine.types",
                "StreamingAgentChatResponse",
                STREAM_WITH_CHILDREN,
            ),
        ):
            cls = _import(module, name)
            if cls is not None:
                found[cls] = kind
        _stream_types = found
    return _stream_types


def stream_kind(result: Any) -> int:
    """How a span's result streams (exact classes: subclasses of user types are not guessed)."""
    if result is None:
        return STREAM_NONE
    return _load_stream_types().get(type(result), STREAM_NONE)
