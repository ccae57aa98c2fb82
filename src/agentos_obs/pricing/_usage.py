"""Token usage normalisation: one :class:`Usage` shape from every provider's own shape.

Convention (OpenTelemetry GenAI): ``input_tokens`` INCLUDES cache reads and cache writes, and
``output_tokens`` INCLUDES reasoning tokens. The cache and reasoning fields break those totals
down; they are never added on top of them.

The extractors are thin, pure functions. Each accepts a dict or an object with attributes
(a provider SDK object, a pydantic model) and returns ``Usage | None``: ``None`` when nothing
usable is there. They never raise: a count that is negative, a bool, NaN or garbage is
ignored; a string of digits and a whole float are accepted.

Provider shapes and how each maps (the same mapping genai-prices uses for its own extractors):

============== ============================================== =================================
provider       input                                          output
============== ============================================== =================================
OpenAI chat    prompt_tokens (cache included)                 completion_tokens (reasoning incl.)
OpenAI resp.   input_tokens (cache included)                  output_tokens (reasoning incl.)
Anthropic      input_tokens + cache_read_input_tokens         output_tokens
               + cache_creation_input_tokens (excluded there)
Bedrock        inputTokens + cacheReadInputTokens             outputTokens
               + cacheWriteInputTokens (excluded there)
Gemini         prompt_token_count (cache included)            candidates_token_count
               + tool_use_prompt_token_count                  + thoughts_token_count
LangChain      input_tokens (cache included)                  output_tokens (reasoning incl.)
Cohere         billed_units.input_tokens (else tokens.*)      billed_units.output_tokens
Ollama         prompt_eval_count                              eval_count
============== ============================================== =================================

Gemini reports thinking tokens (``thoughts_token_count``) outside ``candidates_token_count``
but bills them at the output rate, so they are added to ``output_tokens`` and also reported
as ``reasoning_tokens``. Groq, Mistral, DeepSeek, xAI and other OpenAI-compatible APIs use
the OpenAI shape (Groq's stream chunks carry it under ``x_groq.usage``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Usage",
    "extract_usage",
    "read_field",
    "usage_from_anthropic",
    "usage_from_bedrock",
    "usage_from_cohere",
    "usage_from_gemini",
    "usage_from_langchain",
    "usage_from_ollama",
    "usage_from_openai",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one LLM call (or a sum of calls).

    ``input_tokens`` includes ``cache_read_tokens`` and ``cache_write_tokens``;
    ``output_tokens`` includes ``reasoning_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        # Cache and reasoning tokens are already inside input and output.
        return self.input_tokens + self.output_tokens

    @property
    def is_empty(self) -> bool:
        return not (
            self.input_tokens
            or self.output_tokens
            or self.cache_read_tokens
            or self.cache_write_tokens
            or self.reasoning_tokens
        )

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


# -- reading odd input without raising ------------------------------------------------------


def read_field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, ``obj.key`` otherwise; None when absent or unreadable."""
    if obj is None:
        return None
    try:
        if isinstance(obj, Mapping):
            return obj.get(key)
        # SDK objects can have properties that raise anything, not only AttributeError.
        return getattr(obj, key, None)
    except Exception:
        return None


def _count(value: Any) -> int | None:
    """A token count, or None for anything that is not a usable non-negative count."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0 and value.is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isascii() and text.isdigit() else None
    return None


def _read(obj: Any, *keys: str) -> int | None:
    """The first usable count among ``keys`` (several spellings of one field)."""
    for key in keys:
        count = _count(read_field(obj, key))
        if count is not None:
            return count
    return None


def _build(
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
) -> Usage | None:
    """A Usage from the counts found, None when none was found.

    A total smaller than its own breakdown (a provider bug, a partial stream chunk) is raised
    to the breakdown so the invariants ``input >= cache`` and ``output >= reasoning`` hold.
    """
    if all(c is None for c in (input_tokens, output_tokens, cache_read, cache_write, reasoning)):
        return None
    cache_read = cache_read or 0
    cache_write = cache_write or 0
    reasoning = reasoning or 0
    return Usage(
        input_tokens=max(input_tokens or 0, cache_read + cache_write),
        output_tokens=max(output_tokens or 0, reasoning),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _sum(*counts: int | None) -> int | None:
    present = [c for c in counts if c is not None]
    return sum(present) if present else None


# -- provider extractors --------------------------------------------------------------------


def usage_from_openai(usage: Any) -> Usage | None:
    """OpenAI chat completions or Responses API ``usage`` (also Groq, Mistral, DeepSeek, xAI)."""
    if usage is None:
        return None
    input_tokens = _read(usage, "prompt_tokens", "input_tokens")
    output_tokens = _read(usage, "completion_tokens", "output_tokens")
    input_details = read_field(usage, "prompt_tokens_details") or read_field(
        usage, "input_tokens_details"
    )
    output_details = read_field(usage, "completion_tokens_details") or read_field(
        usage, "output_tokens_details"
    )
    cache_read = _read(input_details, "cached_tokens")
    if cache_read is None:
        # DeepSeek reports cache hits beside prompt_tokens rather than in details.
        cache_read = _read(usage, "prompt_cache_hit_tokens")
    reasoning = _read(output_details, "reasoning_tokens")
    return _build(input_tokens, output_tokens, cache_read, None, reasoning)


def usage_from_anthropic(usage: Any) -> Usage | None:
    """Anthropic Messages ``usage``: its ``input_tokens`` EXCLUDES cache tokens, added here."""
    if usage is None:
        return None
    uncached = _read(usage, "input_tokens")
    cache_read = _read(usage, "cache_read_input_tokens")
    cache_write = _read(usage, "cache_creation_input_tokens")
    output_tokens = _read(usage, "output_tokens")
    return _build(_sum(uncached, cache_read, cache_write), output_tokens, cache_read, cache_write)


def usage_from_bedrock(usage: Any) -> Usage | None:
    """Bedrock Converse ``usage``: ``inputTokens`` EXCLUDES cache tokens, added here."""
    if usage is None:
        return None
    uncached = _read(usage, "inputTokens", "input_tokens")
    cache_read = _read(usage, "cacheReadInputTokens", "cache_read_input_tokens")
    cache_write = _read(usage, "cacheWriteInputTokens", "cache_write_input_tokens")
    output_tokens = _read(usage, "outputTokens", "output_tokens")
    return _build(_sum(uncached, cache_read, cache_write), output_tokens, cache_read, cache_write)


def usage_from_gemini(usage_metadata: Any) -> Usage | None:
    """Gemini / Vertex ``usage_metadata`` (SDK snake_case or REST camelCase).

    Thinking tokens are billed as output, so ``output_tokens = candidates + thoughts`` and
    ``reasoning_tokens = thoughts``. Tool-use prompt tokens are billed as input.
    """
    if usage_metadata is None:
        return None
    prompt = _read(usage_metadata, "prompt_token_count", "promptTokenCount")
    tool_prompt = _read(usage_metadata, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
    candidates = _read(usage_metadata, "candidates_token_count", "candidatesTokenCount")
    thoughts = _read(usage_metadata, "thoughts_token_count", "thoughtsTokenCount")
    cached = _read(usage_metadata, "cached_content_token_count", "cachedContentTokenCount")
    return _build(_sum(prompt, tool_prompt), _sum(candidates, thoughts), cached, None, thoughts)


def usage_from_langchain(usage_metadata: Any) -> Usage | None:
    """LangChain ``AIMessage.usage_metadata`` (input already includes cache tokens)."""
    if usage_metadata is None:
        return None
    input_tokens = _read(usage_metadata, "input_tokens")
    output_tokens = _read(usage_metadata, "output_tokens")
    input_details = read_field(usage_metadata, "input_token_details")
    output_details = read_field(usage_metadata, "output_token_details")
    cache_read = _read(input_details, "cache_read")
    cache_write = _read(input_details, "cache_creation")
    reasoning = _read(output_details, "reasoning")
    return _build(input_tokens, output_tokens, cache_read, cache_write, reasoning)


def usage_from_cohere(usage: Any) -> Usage | None:
    """Cohere ``usage`` (v2) or ``meta`` (v1): ``billed_units`` is what is charged."""
    if usage is None:
        return None
    for part in ("billed_units", "tokens"):
        found = read_field(usage, part)
        result = _build(_read(found, "input_tokens"), _read(found, "output_tokens"))
        if result is not None:
            return result
    return None


def usage_from_ollama(response: Any) -> Usage | None:
    """Ollama response counts (``prompt_eval_count`` / ``eval_count``)."""
    if response is None:
        return None
    return _build(_read(response, "prompt_eval_count"), _read(response, "eval_count"))


# -- shape detection ------------------------------------------------------------------------

_Extractor = Callable[[Any], "Usage | None"]

# Keys that only one shape has, checked in this order.
_SIGNATURES: tuple[tuple[tuple[str, ...], _Extractor], ...] = (
    (("cache_read_input_tokens", "cache_creation_input_tokens"), usage_from_anthropic),
    (("inputTokens", "outputTokens", "cacheReadInputTokens"), usage_from_bedrock),
    (
        (
            "prompt_token_count",
            "promptTokenCount",
            "candidates_token_count",
            "candidatesTokenCount",
        ),
        usage_from_gemini,
    ),
    (("prompt_eval_count", "eval_count"), usage_from_ollama),
    (("billed_units",), usage_from_cohere),
    (("input_token_details", "output_token_details"), usage_from_langchain),
    (("prompt_tokens", "completion_tokens", "input_tokens_details"), usage_from_openai),
)

# Provider hint (any spelling containing the word) -> reader for bare input/output tokens.
# Only readers that understand bare ``input_tokens``/``output_tokens`` belong here.
_HINTS: tuple[tuple[str, _Extractor], ...] = (
    ("anthropic", usage_from_anthropic),
    ("bedrock", usage_from_bedrock),
    ("aws", usage_from_bedrock),
)

# Where a response object or dict keeps its usage, most specific first.
_WRAPPERS = (
    "usage_metadata",
    "usageMetadata",
    "usage",
    "token_usage",
    "x_groq",
    "meta",
    "llm_output",
    "raw",
    "additional_kwargs",
    "response_metadata",
)
_MAX_DEPTH = 3
_MAX_NODES = 12


def _has_any(obj: Any, keys: tuple[str, ...]) -> bool:
    if isinstance(obj, Mapping):
        return any(key in obj for key in keys)
    return any(read_field(obj, key) is not None for key in keys)


def _extract_here(obj: Any, hinted: _Extractor | None) -> Usage | None:
    """Usage read from ``obj`` itself (no wrapper), by its distinctive keys."""
    for keys, extractor in _SIGNATURES:
        if _has_any(obj, keys):
            found = extractor(obj)
            if found is not None:
                return found
    # Bare input_tokens/output_tokens: OpenAI Responses, LangChain, or Anthropic whose cache
    # keys are absent or None. Without cache counts all of them mean the same totals; the
    # hint picks the reader so a provider's own extra keys are read the provider's way.
    if _has_any(obj, ("input_tokens", "output_tokens")):
        return (hinted or usage_from_openai)(obj)
    return None


def _extract(obj: Any, hinted: _Extractor | None, depth: int, budget: list[int]) -> Usage | None:
    # A callable is a method or a mock, not a container of usage; `budget` bounds the nodes
    # visited, so an object that answers every attribute (a mock, a proxy) costs little.
    if obj is None or isinstance(obj, (str, bytes, int, float)) or callable(obj):
        return None
    if isinstance(obj, Usage):
        return obj
    budget[0] -= 1
    if budget[0] < 0:
        return None
    # Wrappers first: a response object has both `usage` and unrelated top-level fields.
    if depth < _MAX_DEPTH:
        for key in _WRAPPERS:
            inner = read_field(obj, key)
            if inner is not None and inner is not obj:
                found = _extract(inner, hinted, depth + 1, budget)
                if found is not None:
                    return found
    return _extract_here(obj, hinted)


def _hinted_extractor(provider: str | None) -> _Extractor | None:
    if not isinstance(provider, str):
        return None
    lowered = provider.lower()
    for word, extractor in _HINTS:
        if word in lowered:
            return extractor
    return None


def extract_usage(obj: Any, provider: str | None = None) -> Usage | None:
    """Usage from any known shape, or from inside a response that wraps one.

    Looks inside the usual wrappers (``usage_metadata``, ``usage``, ``token_usage``,
    ``x_groq``, ``meta``, ``llm_output``, ``raw``, ``additional_kwargs``,
    ``response_metadata``; a dict key or an attribute, up to three levels deep) before
    reading ``obj`` itself.
    ``provider`` (e.g. LangChain's ``ls_provider``) breaks ties between shapes that share key
    names. Never raises; None when nothing usable is found.
    """
    try:
        hinted = _hinted_extractor(provider)
        return _extract(obj, hinted, 0, [_MAX_NODES])
    except Exception:
        # Pure reader over untrusted shapes: odd input means "no usage", never an error.
        return None
