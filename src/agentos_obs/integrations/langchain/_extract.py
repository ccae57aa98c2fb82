"""Pure readers of LangChain callback payloads: run names, span kinds, models, usage.

Every function takes whatever LangChain (or a caller of the handler methods) passed and
never raises on an odd payload: missing keys, ``None`` where a dict was expected, objects of
an unexpected type all give "nothing found". They import nothing from LangChain, so they
work across its versions and are cheap to test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentos_obs.integrations._content import redact, truncate
from agentos_obs.pricing._usage import Usage, extract_usage, usage_from_langchain
from agentos_obs.tracing._spans import SpanKind

__all__ = [
    "MARKER_TAG_PREFIX",
    "MAX_PARAMS_LENGTH",
    "NO_MARKERS",
    "LLMOutcome",
    "answer_message",
    "chain_kind",
    "document_count",
    "finish_reason",
    "generations_content",
    "has_delta",
    "invocation_params_json",
    "is_interrupt",
    "message_usage",
    "metadata_marker",
    "own_marker",
    "read_llm_result",
    "request_model",
    "run_name",
    "scan_tags",
    "top_scores",
]

MAX_PARAMS_LENGTH = 2000

# LangGraph runs: the graph itself carries this integration marker (inherited by its nodes,
# which also carry `langgraph_node`); create_agent graphs use their own marker.
_GRAPH_INTEGRATIONS = frozenset({"langgraph", "langchain_create_agent"})
_MARKED_KINDS = {kind.value: kind for kind in SpanKind}
# Tags LangChain adds for its own bookkeeping: position in a sequence, graph step, map key.
_INTERNAL_TAG_PREFIXES = ("seq:step:", "graph:step:", "map:key:", "langsmith:")
# Exceptions LangGraph raises to pause or redirect a graph: control flow, not failures.
_CONTROL_FLOW_EXCEPTIONS = frozenset(
    {"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"}
)
_MODEL_KEYS = ("model_name", "model", "model_id", "deployment_name", "azure_deployment", "repo_id")


def _is_mapping(value: Any) -> bool:
    # LangChain passes plain dicts: test that first, the ABC check is ten times slower.
    return value.__class__ is dict or isinstance(value, Mapping)


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if _is_mapping(mapping) else None


def run_name(serialized: Any, name: Any, default: str = "Unnamed") -> str:
    """The run's name as LangChain's own tracer names it: the ``name`` kwarg, then
    ``serialized["name"]``, then the last part of ``serialized["id"]``."""
    if isinstance(name, str) and name:
        return name
    if _is_mapping(serialized):
        found = serialized.get("name")
        if isinstance(found, str) and found:
            return found
        ids = serialized.get("id")
        if isinstance(ids, Sequence) and not isinstance(ids, str) and ids:
            last = ids[-1]
            if isinstance(last, str) and last:
                return last
    return default


NO_MARKERS: frozenset[SpanKind] = frozenset()
MARKER_TAG_PREFIX = "agentos_kind:"


def _kind_named(value: Any) -> SpanKind | None:
    if isinstance(value, SpanKind):
        return value
    if isinstance(value, str):
        return _MARKED_KINDS.get(value.lower())
    return None


def metadata_marker(metadata: Any) -> SpanKind | None:
    """The kind asked for with ``metadata={"agentos_kind": "agent" | "memory" | …}``."""
    return _kind_named(_get(metadata, "agentos_kind"))


def scan_tags(tags: Any) -> tuple[list[str] | None, frozenset[SpanKind]]:
    """One pass over a run's tags: the user's tags (LangChain's positional bookkeeping tags
    left out) and the kinds asked for with ``"agentos_kind:memory"``-style tags.

    Markers of both forms are inherited by every descendant run (the caller keeps what is
    new compared with the parent). In LangChain's config merge a parent's metadata value
    overrides the child's, so a marker inside a marked runnable needs the tag form: tags
    are merged, not overridden.
    """
    if not tags or not isinstance(tags, (list, tuple)):
        return None, NO_MARKERS
    kept: list[str] = []
    found: set[SpanKind] | None = None
    for tag in tags:
        if not isinstance(tag, str) or tag.startswith(_INTERNAL_TAG_PREFIXES):
            continue
        kept.append(tag)
        if tag.startswith(MARKER_TAG_PREFIX):
            kind = _kind_named(tag[len(MARKER_TAG_PREFIX) :])
            if kind is not None:
                found = found or set()
                found.add(kind)
    return kept or None, frozenset(found) if found else NO_MARKERS


def own_marker(mine: frozenset[SpanKind], parents: frozenset[SpanKind]) -> SpanKind | None:
    """The marker this run carries that its parent does not (LLM runs are never re-kinded)."""
    if not mine:
        return None
    new = [k for k in mine if k not in parents and k is not SpanKind.LLM]
    if not new:
        return None
    # Several new markers at once: a stable choice, the more specific kinds first.
    return min(new, key=_MARKER_PRIORITY.index)


_MARKER_PRIORITY = [
    SpanKind.MEMORY,
    SpanKind.RETRIEVAL,
    SpanKind.EMBEDDING,
    SpanKind.TOOL,
    SpanKind.AGENT,
    SpanKind.CHAIN,
    SpanKind.LLM,
]


def chain_kind(name: str, metadata: Any) -> SpanKind:
    """AGENT for a LangGraph graph or a ``create_agent`` agent, else CHAIN.

    A root graph carries the LangGraph integration marker but no ``langgraph_node`` (its
    nodes carry both); a nested agent is recognised by ``lc_agent_name`` equal to its own
    run name, or by LangGraph's default graph name.
    """
    if name == "LangGraph":
        return SpanKind.AGENT
    if metadata and _is_mapping(metadata):
        if (
            metadata.get("ls_integration") in _GRAPH_INTEGRATIONS
            and "langgraph_node" not in metadata
        ):
            return SpanKind.AGENT
        if name and metadata.get("lc_agent_name") == name:
            return SpanKind.AGENT
    return SpanKind.CHAIN


def is_interrupt(error: BaseException) -> bool:
    """True for LangGraph's pause/redirect exceptions (matched by name: no import)."""
    return any(cls.__name__ in _CONTROL_FLOW_EXCEPTIONS for cls in type(error).__mro__)


# -- models -------------------------------------------------------------------------------


def _model_in(mapping: Any) -> str | None:
    if not _is_mapping(mapping):
        return None
    for key in _MODEL_KEYS:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def request_model(metadata: Any, invocation_params: Any, serialized: Any) -> str | None:
    """The model asked for: ``ls_model_name``, then invocation params, then serialized kwargs."""
    found = _get(metadata, "ls_model_name")
    if isinstance(found, str) and found:
        return found
    return _model_in(invocation_params) or _model_in(_get(serialized, "kwargs"))


# Tool schemas are long and are not parameters of the call: their names are enough.
_PARAMS_LEFT_OUT = frozenset({"tools", "functions"})
_params_cache: dict[tuple[Any, ...], str] = {}
_PARAMS_CACHE_SIZE = 256


def invocation_params_json(params: Any) -> str | None:
    """Invocation parameters as JSON with every credential replaced (always, whatever the
    content-capture setting). Tool schemas are summarised as ``tool_names``.

    The same parameters come back on every call of a model: the JSON is cached by their
    (hashable) items, which costs a tuple hash instead of a redact-and-serialise.
    """
    if not params or not _is_mapping(params):
        return None
    try:
        key: tuple[Any, ...] | None = tuple(params.items())
        cached = _params_cache.get(key)  # type: ignore[arg-type]
        if cached is not None:
            return cached
    except TypeError:  # an unhashable value (a list of stop words, tool schemas): no cache
        key = None
    kept = {k: v for k, v in params.items() if k not in _PARAMS_LEFT_OUT}
    tools = params.get("tools")
    if isinstance(tools, (list, tuple)) and tools:
        kept["tool_names"] = [_tool_name(t) for t in tools]
    text = truncate(
        json.dumps(redact(kept), ensure_ascii=False, default=str, sort_keys=True),
        MAX_PARAMS_LENGTH,
    )
    if key is not None:
        if len(_params_cache) >= _PARAMS_CACHE_SIZE:
            _params_cache.clear()
        _params_cache[key] = text
    return text


def _tool_name(tool: Any) -> str:
    function = _get(tool, "function")
    name = _get(function, "name") or _get(tool, "name") or getattr(tool, "name", None)
    return name if isinstance(name, str) else "?"


# -- LLM results --------------------------------------------------------------------------


class LLMOutcome:
    """What an ``LLMResult`` says about the call: usage, answering model, finish reason."""

    __slots__ = ("finish_reason", "model", "usage")

    def __init__(self, usage: Usage | None, model: str | None, finish_reason: str | None) -> None:
        self.usage = usage
        self.model = model
        self.finish_reason = finish_reason


def _first_generation(response: Any) -> Any:
    generations = getattr(response, "generations", None)
    if not isinstance(generations, list) or not generations:
        return None
    first = generations[0]
    if isinstance(first, list):
        return first[0] if first else None
    return first


def answer_message(response: Any) -> Any:
    """The first generation's message (or text) of an ``LLMResult``, or None."""
    generation = _first_generation(response)
    if generation is None:
        return None
    message = getattr(generation, "message", None)
    return message if message is not None else getattr(generation, "text", None)


def has_delta(token: Any, chunk: Any) -> bool:
    """True for a streamed chunk that carries content or a tool call — not the content-less
    role chunk OpenAI sends first, nor Anthropic's ``message_start``."""
    if isinstance(token, str) and token:
        return True
    message = getattr(chunk, "message", None)
    if message is None:
        text = getattr(chunk, "text", None)
        return isinstance(text, str) and bool(text)
    if getattr(message, "tool_call_chunks", None):
        return True
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return bool(content)
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str) and part:
                return True
            if isinstance(part, Mapping):
                if part.get("text") or part.get("partial_json") or part.get("input"):
                    return True
                if part.get("type") in ("tool_use", "tool_call", "tool_call_chunk"):
                    return True
    return False


def message_usage(message: Any) -> Usage | None:
    """``usage_metadata`` of an ``AIMessage`` / chunk, or None."""
    meta = getattr(message, "usage_metadata", None)
    return usage_from_langchain(meta) if meta else None


def finish_reason(*sources: Any) -> str | None:
    for source in sources:
        for key in ("finish_reason", "stop_reason", "done_reason"):
            value = _get(source, key)
            if isinstance(value, str) and value:
                return value
    return None


def read_llm_result(response: Any, provider: str | None) -> LLMOutcome:
    """Usage in LangChain's order of trust — ``usage_metadata``, then
    ``llm_output["token_usage" | "usage"]``, then ``generation_info``, then
    ``response_metadata`` — with the answering model and the finish reason."""
    generation = _first_generation(response)
    message = getattr(generation, "message", None)
    generation_info = getattr(generation, "generation_info", None)
    response_metadata = getattr(message, "response_metadata", None)
    llm_output = getattr(response, "llm_output", None)

    usage = message_usage(message)
    if usage is None and llm_output and _is_mapping(llm_output):
        for key in ("token_usage", "usage"):
            raw = llm_output.get(key)
            if raw:
                usage = extract_usage(raw, provider)
                if usage is not None:
                    break
    if usage is None and generation_info:
        usage = extract_usage(generation_info, provider)
    if usage is None and response_metadata:
        usage = extract_usage(response_metadata, provider)

    model = _model_in(response_metadata) or _model_in(llm_output) or _model_in(generation_info)
    reason = finish_reason(response_metadata, generation_info)
    return LLMOutcome(usage, model, reason)


# -- retrievers ---------------------------------------------------------------------------


def document_count(documents: Any) -> int | None:
    if isinstance(documents, (list, tuple)):
        return len(documents)
    return None


def top_scores(documents: Iterable[Any], limit: int = 5) -> list[float] | None:
    """Relevance scores that retrievers put in document metadata, best first."""
    scores: list[float] = []
    for doc in documents:
        meta = getattr(doc, "metadata", None)
        for key in ("score", "relevance_score", "_score", "similarity"):
            value = _get(meta, key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scores.append(float(value))
                break
    if not scores:
        return None
    scores.sort(reverse=True)
    return scores[:limit]


def generations_content(response: Any) -> Any:
    """The messages (or texts) an LLM returned, for content capture."""
    generations = getattr(response, "generations", None)
    if not isinstance(generations, list):
        return None
    out: list[Any] = []
    for choices in generations:
        for generation in choices if isinstance(choices, list) else [choices]:
            message = getattr(generation, "message", None)
            out.append(message if message is not None else getattr(generation, "text", None))
    return out[0] if len(out) == 1 else out
